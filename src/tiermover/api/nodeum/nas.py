"""Placeholder: routes are added by the resource family owner."""

from fastapi import APIRouter

router = APIRouter()
