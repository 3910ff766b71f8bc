"""The kit's commands. Each module's `main(argv)` is one command line tool; together they
compose the concern packages (keras2onnx, tensorrt, triton, loadgen) through their public
surfaces, which never import each other."""
