"""Build script: compiles the cffi extension ``drasi_host._ffi`` (out-of-line, API mode)."""

from setuptools import setup

setup(cffi_modules=["ffi_build/build_ffi.py:ffibuilder"])
