"""The Gradio app's glue: pure handlers, input checks and formatting between the UI (app.py) and the libraries.

``app.py`` only wires components to these handlers; the handlers call ``mmsa_core`` (models and
explanations) and ``annotations`` (the correction store) and return plain values.
"""
