"""What the API opens lazily (api.services): nothing at construction, catalogs kept when a reload fails,
databases opened on first use and closed once."""

from __future__ import annotations

from apihelpers import settings_for

from api.services import Services


def test_nothing_is_opened_until_used(world, tmp_path):
    from forecast.settings import Settings

    home = tmp_path / "home"
    Services(Settings(home=home, catalogs=tmp_path / "none")).close()
    assert not home.exists()  # no store, no database file made by merely creating the services
    s = Services(settings_for(world, tmp_path))
    assert list(s.catalogs()) == ["radar_precip"] and s.catalog("radar_precip").id == "radar_precip"
    assert s.catalog("nope") is None
    assert s.users.authenticate(world["tokens"]["reader"]).name == "rita" and s.users is s.users
    assert s.queue.list(limit=1)
    s.close()
    s.close()  # twice is harmless


def test_a_broken_catalog_folder_keeps_the_last_good_set(world, tmp_path, monkeypatch):
    import api.services as services

    s = Services(settings_for(world, tmp_path))
    good = s.catalogs()
    monkeypatch.setattr(services.time, "monotonic", lambda: 1e12)  # the minute is over

    def broken(_):
        raise ValueError("radar_precip.yaml: grid.x.size must be > 0")

    monkeypatch.setattr("forecast.catalog.load_catalogs", broken)
    assert s.catalogs() is good
