"""unetkit: a Keras U-Net served by NVIDIA Triton Inference Server with TensorRT."""
