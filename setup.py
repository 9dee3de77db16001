"""Build the optional compiled helpers; without a C compiler (or mypyc) the pure-Python path is used.

Two kinds: the hand-written pcap walk (analyzer/capture/_walk.c), and the modules listed in
analyzer/native.py compiled from their typed Python source by mypyc. Both are optional: if anything
fails to build, the install still succeeds and the same code runs as Python (slower, same results).
"""

import importlib.util
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def _native_list():
    spec = importlib.util.spec_from_file_location("_tls_analyzer_native", os.path.join(HERE, "analyzer", "native.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _mypyc_extensions():
    if os.environ.get("TLS_ANALYZER_PURE", "") not in ("", "0"):
        return []
    native = _native_list()
    try:
        from mypyc.build import mypycify

        paths = [os.path.relpath(native.source_path(m), HERE) for m in native.COMPILED]
        # type-checked on its own terms (not the project's strict settings): only real type errors stop it
        return mypycify(
            ["--config-file=", "--ignore-missing-imports", "--follow-imports=silent", *paths],
            opt_level="3",
            group_name=native.GROUP,
        )
    except Exception as exc:  # no mypyc, or it refused: the Python source runs instead
        print(
            f"tls-analyzer: not compiling with mypyc ({type(exc).__name__}: {exc}); using the Python source",
            file=sys.stderr,
        )
        return []


class OptionalBuildExt(build_ext):
    """Every extension is optional; the mypyc ones are all-or-nothing (they call into one shared library).
    mypyc runs only when extensions are really built (not for metadata)."""

    def finalize_options(self):
        # added before setuptools prepares the extension list (it annotates each one there)
        if not getattr(self.distribution, "_mypyc_added", False):
            self.distribution._mypyc_added = True
            exts = _mypyc_extensions()
            for e in exts:
                e._mypyc = True
            self.distribution.ext_modules.extend(exts)
        super().finalize_options()

    def run(self):
        self._mypyc_failed = False
        if self.inplace:  # a module dropped from the list must not leave its old extension behind
            built = {os.path.abspath(self.get_ext_fullpath(e.name)) for e in self.extensions}
            for folder, _, names in os.walk(os.path.join(HERE, "analyzer")):
                for name in names:
                    path = os.path.join(folder, name)
                    if name.endswith((".so", ".pyd")) and path not in built:
                        os.remove(path)
        super().run()
        if self._mypyc_failed:
            for ext in self.extensions:
                if getattr(ext, "_mypyc", False):
                    path = self.get_ext_fullpath(ext.name)
                    if os.path.exists(path):
                        os.remove(path)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            if getattr(ext, "_mypyc", False):
                self._mypyc_failed = True
            print(
                f"tls-analyzer: optional extension {ext.name} not built ({exc}); using the Python source",
                file=sys.stderr,
            )


setup(
    ext_modules=[Extension("analyzer.capture._walk", ["analyzer/capture/_walk.c"])],
    cmdclass={"build_ext": OptionalBuildExt},
)
