"""Task pipelines: prediction and training per task."""
