"""Many runs: job files, batches, executors (local, Ray), schedules, output folders and
evaluation."""
