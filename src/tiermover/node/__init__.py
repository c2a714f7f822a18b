"""The worker node: claims executions over HTTP, runs workflows, reports back."""
