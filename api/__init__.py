"""The HTTP API (Litestar): EDR-style forecast and observation queries with provenance and plausibility
annotations, the review queue, models, users and operations. Never imports torch: forecasts are
precomputed in the forecast store. Entry point: ``api.app:app`` (or ``create_app(settings)``)."""
