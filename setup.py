"""Build of the optional C extension; everything else is in pyproject.toml.

The extension only speeds up the EVTX reader: when it cannot be built (no compiler), the install
goes on and vigil reads EVTX in pure Python, saying so once at run time.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vigil.events._binxml_values",
            sources=["src/vigil/events/_binxml_values.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
