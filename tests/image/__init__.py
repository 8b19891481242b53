"""Tests of the container image: the Dockerfile as written, and the image built and run."""
