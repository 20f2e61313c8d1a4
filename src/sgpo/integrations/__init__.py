"""SGPO inside other trainers: TRL (`sgpo.integrations.trl`) and verl (`sgpo.integrations.verl`)."""
