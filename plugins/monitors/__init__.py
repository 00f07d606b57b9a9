"""Built-in metric collectors: extra QRS reads done by every monitor run."""
