"""Hostile and broken input files, generated on the fly (no binaries are committed):
``corpus`` builds the checkpoint files for tests/test_hostile_files.py, ``images`` the broken
images for tests/test_broken_images.py. Each can also be run as a script to write its files
to a folder for inspection: ``python tests/hostile/corpus.py OUTDIR``."""
