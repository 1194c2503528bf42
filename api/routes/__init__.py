"""Route groups, one module per audience; each exposes ``build_router(ctx) -> APIRouter``."""
