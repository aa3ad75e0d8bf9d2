"""Serving models to people: the Gradio web demo (``uniformerv2 demo``)."""
