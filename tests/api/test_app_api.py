"""The application (api.app): importing it leaves torch out."""

from __future__ import annotations

import subprocess
import sys


def test_api_import_leaves_torch_out():
    code = "import sys, api.app; assert 'torch' not in sys.modules and 'lightning' not in sys.modules; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_entry_points(tmp_path):
    from litestar import Litestar

    import api.app
    from forecast.settings import Settings

    assert isinstance(api.app.app, Litestar)
    app = api.app.create_app(Settings(home=tmp_path, catalogs=tmp_path))
    assert app.state.settings.home == tmp_path and app is not api.app.app
