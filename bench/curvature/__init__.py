"""Benchmarks of the curvature metrics against PyHessian, curvlinops and hessian-eigenthings."""
