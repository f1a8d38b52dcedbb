"""pdiff: Planned Diffusion, an AR plan then parallel spans by masked diffusion."""
