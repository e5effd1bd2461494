"""Build hook for the one C extension: the ring buffer hot path."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ringbuf._core",
            sources=["ringbuf/_core.c"],
            extra_compile_args=["-O2", "-std=c11"],
        )
    ]
)
