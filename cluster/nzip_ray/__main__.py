"""`python -m nzip_ray` runs the nzip-ray command line."""
from nzip_ray.cli import main

raise SystemExit(main())
