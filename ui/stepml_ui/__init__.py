"""The stepml web UI's building blocks: the API/AWS client, the run graph, forms and charts.

Nothing here imports handler code (``functions/``) or the pipeline stages: the UI sees the same
HTTP API and AWS APIs a user would, so it runs unchanged against the offline stack or AWS.
"""
