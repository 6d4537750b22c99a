"""Ground-truth benchmark tables (NAS-Bench-201 x hardware) and true-front scoring."""
