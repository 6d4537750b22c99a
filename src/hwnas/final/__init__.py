"""The final stage's pieces (``conf/final``): settings, model selection, full training (in process, side by
side or DDP), held-out metrics and their runners, and each model's row of ``final.csv``."""
