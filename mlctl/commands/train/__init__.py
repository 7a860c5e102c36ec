"""mlctl train: submit a job spec (`mlctl train SPEC`) and manage training jobs (`mlctl train list` ...).

The click group is in group.py, so `mlctl train SPEC`'s fast path (main.py) can import submit.py and its
helpers without loading click.
"""
