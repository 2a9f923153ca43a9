"""Route handlers by area: data (collections and queries), review, admin (models, users), ops."""
