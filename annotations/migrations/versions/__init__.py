"""Revision scripts; annotations.db.init_db() applies them."""
