"""Who this process is in a job (rank, launcher) and the job's one trace and totals."""
