"""The views of the method packages, one module each, named by `MethodPackage.view` and imported on first use."""
