"""The results layer: the database schema, the store, and what reads and names results.

Torch-free, Ray-free and Hydra-free (an import-linter contract keeps it so): analysis and the
dashboard build on it, and so does the runner above it. Like Optuna's ``storages/_rdb``.
"""
