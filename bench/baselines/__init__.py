"""The alternatives Sandkasten is measured against, each a real run of the real package.

- ``gateway``: gateway-provisioners' ``DockerProvisioner`` and a kernel image built
  here with its own launcher (``jupyter-image-bootstrap``);
- ``llm_sandbox``: llm-sandbox's Docker backend on a local image, no pulls;
- ``plain_docker``: ``docker run`` + ``docker exec`` through docker-py.
"""
