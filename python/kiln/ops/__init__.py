"""Differentiable ops: one module per family, each op a Function on raw arrays, its
kernels reached through ctx.backend and its array math through ctx.backend.xp."""
