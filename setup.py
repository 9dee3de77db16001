"""Build the optional compiled helper; without a C compiler the pure-Python path is used."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("analyzer.capture._walk", ["analyzer/capture/_walk.c"], optional=True)])
