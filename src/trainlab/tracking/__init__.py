from .env import environment, git_revision
from .run_dir import MetricsWriter, RunDir, read_metrics

__all__ = ["environment", "git_revision", "MetricsWriter", "RunDir", "read_metrics"]
