"""The engine: Docker sandboxes, the runner client, images.

It never imports tornado or Jupyter Server; handlers and the provisioner call it.
"""
