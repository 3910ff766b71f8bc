"""Echo model for measuring the load generator: MASK is the first channel of IMAGE."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            mask = np.ascontiguousarray(image[..., 0])
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("MASK", mask)]))
        return responses
