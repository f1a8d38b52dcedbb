"""Training: the hybrid objective of spec section 6 (`objective`) and the loop (`loop`,
`python -m pdiff train`). Generation never imports this package."""
