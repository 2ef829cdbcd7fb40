"""A generated sample catalog: fictional bag brands with a visual signature each.

Every brand has a consistent look — silhouette, colour palette, surface pattern, hardware
and handle — and every product photo varies it the way real catalog shots vary: pose,
scale, position, background, lighting and sensor noise. A classifier has to learn the
signature, not memorize pixels, so the demo's accuracy means something. Everything is
derived from one seed, so a catalog is reproducible byte for byte.

The catalog is served in the Farfetch-style listing format (``/api/listings?page=&pageSize=``
plus ``/images/<id>.jpg``) with a few deliberately broken entries, the kinds real feeds have:
an image URL that 404s, a corrupt (truncated) image, the same listing on two pages, and
one photo re-listed under a second product id.
"""

from __future__ import annotations

import io
import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image, ImageDraw, ImageFilter

from baghunter.local.sample.server import Reply, Request, Route


@dataclass(frozen=True)
class BrandLook:
    name: str
    shape: str  # tote, clutch, hobo, satchel, bucket, baguette
    palette: tuple[tuple[int, int, int], ...]
    pattern: str  # solid, stripes, checks, dots, quilted, monogram
    hardware: tuple[int, int, int]  # clasp / ring colour
    handle: str  # arch, chain, none, short


BRANDS: tuple[BrandLook, ...] = (
    BrandLook("Aurelia", "tote", ((142, 68, 42), (170, 92, 60)), "solid", (212, 175, 55), "arch"),
    BrandLook(
        "Borsetti", "clutch", ((20, 20, 24), (45, 45, 52)), "quilted", (200, 200, 210), "chain"
    ),
    BrandLook(
        "Castellane",
        "satchel",
        ((32, 64, 122), (200, 190, 160)),
        "stripes",
        (212, 175, 55),
        "short",
    ),
    BrandLook("Duvanne", "hobo", ((128, 30, 48), (160, 60, 70)), "dots", (190, 190, 200), "arch"),
    BrandLook(
        "Elmora", "bucket", ((60, 110, 70), (230, 220, 190)), "checks", (150, 110, 60), "short"
    ),
    BrandLook(
        "Fiorvanti",
        "baguette",
        ((225, 200, 150), (110, 70, 40)),
        "monogram",
        (212, 175, 55),
        "none",
    ),
)


@dataclass
class SampleProduct:
    id: str
    brand: str
    image_seed: int
    colour: str
    shape: str
    pattern: str


@dataclass(frozen=True)
class SampleCatalogRecord:
    """Which sample catalog a data home was filled from, and where it was served.

    The demo writes it; `baghunter up` reads it to serve the same catalog at the same
    address, the source the home's scheduled ingest runs read.
    """

    seed: int
    brands: int
    per_brand: int
    port: int

    FILE: ClassVar[str] = "sample-catalog.json"

    def save(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        (home / self.FILE).write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def load(cls, home: Path) -> SampleCatalogRecord | None:
        path = home / cls.FILE
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def catalog(self) -> SampleCatalog:
        return SampleCatalog(seed=self.seed, brands=self.brands, per_brand=self.per_brand)


@dataclass
class SampleCatalog:
    """A deterministic catalog of ``per_brand`` products for each of ``brands`` brands."""

    seed: int = 7
    brands: int = 4
    per_brand: int = 40
    image_size: int = 128
    page_size: int = 25
    broken: bool = True
    products: list[SampleProduct] = field(init=False)

    def __post_init__(self) -> None:
        if not 2 <= self.brands <= len(BRANDS):
            raise ValueError(f"brands must be between 2 and {len(BRANDS)}")
        rng = random.Random(self.seed)
        self.products = []
        for b, look in enumerate(BRANDS[: self.brands]):
            for i in range(self.per_brand):
                self.products.append(
                    SampleProduct(
                        id=f"{100000 + b * 1000 + i}",
                        brand=look.name,
                        image_seed=rng.randrange(2**31),
                        colour=_colour_name(look.palette[0]),
                        shape=look.shape,
                        pattern=look.pattern,
                    )
                )
        # Interleave brands as a real "newest first" listing would, deterministically.
        rng.shuffle(self.products)

    # --- images --------------------------------------------------------------------------
    def image(self, product: SampleProduct) -> bytes:
        look = next(b for b in BRANDS if b.name == product.brand)
        return render_bag(look, product.image_seed, self.image_size)

    def holdout_images(self, n_per_brand: int = 2) -> list[tuple[str, bytes]]:
        """Fresh photos of each brand that are not in the catalog: ``(brand, jpeg)``."""
        rng = random.Random(self.seed + 1)
        return [
            (look.name, render_bag(look, rng.randrange(2**31), self.image_size))
            for look in BRANDS[: self.brands]
            for _ in range(n_per_brand)
        ]

    # --- listings ------------------------------------------------------------------------
    def listings(self, base_url: str) -> list[dict[str, Any]]:
        """All listing records in feed order, broken entries included."""
        records = [self._record(p, base_url) for p in self.products]
        if self.broken and len(records) >= 4:
            first = records[0]
            relisted = "relist-" + str(first["id"])
            records.append(  # the same photo, re-encoded, under a second product id
                {
                    **first,
                    "id": relisted,
                    "shortDescription": "Re-listed " + str(first["shortDescription"]),
                    "images": [{"url": f"{base_url}/images/{relisted}.jpg"}],
                }
            )
            records.append(self._broken_record("missing-image", base_url))
            records.append(self._broken_record("corrupt-image", base_url))
            # A listing repeated on a later page (feeds shift while being paged through).
            records.append(dict(records[1]))
        return records

    def _record(self, p: SampleProduct, base_url: str) -> dict[str, Any]:
        return {
            "id": p.id,
            "brand": {"name": p.brand},
            "shortDescription": f"{p.brand} {p.colour} {p.shape} bag",
            "categories": ["Women", "Bags", p.shape.title() + " Bags"],
            "images": [{"url": f"{base_url}/images/{p.id}.jpg"}],
            "price": {"value": 150 + (p.image_seed % 900), "currency": "EUR"},
            "colour": p.colour,
            "pattern": p.pattern,
            "gender": "Women",
        }

    def _broken_record(self, kind: str, base_url: str) -> dict[str, Any]:
        return {
            "id": kind,
            "brand": {"name": BRANDS[0].name},
            "shortDescription": f"Broken entry: {kind}",
            "categories": ["Women", "Bags"],
            "images": [{"url": f"{base_url}/images/{kind}.jpg"}],
            "price": {"value": 99, "currency": "EUR"},
        }

    def routes(self, base_url: str) -> dict[str, Route]:
        """Routes for :class:`~baghunter.local.sample.server.RouteServer`."""
        records = self.listings(base_url)
        page_size = self.page_size

        def listing(request: Request) -> Reply:
            try:
                page = int(request.query.get("page", "1"))
                size = int(request.query.get("pageSize", str(page_size)))
            except ValueError:
                return Reply(400, b'{"error": "page and pageSize must be integers"}')
            size = max(1, min(size, 200))
            total_pages = max(1, math.ceil(len(records) / size))
            chunk = records[(page - 1) * size : page * size] if page >= 1 else []
            body = {
                "products": chunk,
                "page": page,
                "pageSize": size,
                "totalPages": total_pages,
                "totalItems": len(records),
            }
            return Reply(200, json.dumps(body).encode(), content_type="application/json")

        routes: dict[str, Route] = {"/api/listings": listing}
        for product in self.products:
            routes[f"/images/{product.id}.jpg"] = _LazyImage(self, product)
        if self.broken:
            good = self.image(self.products[0])
            routes["/images/corrupt-image.jpg"] = Reply(
                200, good[: len(good) // 2], content_type="image/jpeg"
            )
            routes[f"/images/relist-{self.products[0].id}.jpg"] = Reply(
                200, _reencode(good), content_type="image/jpeg"
            )
            # "/images/missing-image.jpg" is deliberately absent: the server answers 404.
        return routes


class _LazyImage:
    """Renders a product photo on first request and keeps it (a CDN with a warm cache)."""

    def __init__(self, catalog: SampleCatalog, product: SampleProduct) -> None:
        self._catalog = catalog
        self._product = product
        self._body: bytes | None = None

    def __call__(self, request: Request) -> Reply:
        if self._body is None:
            self._body = self._catalog.image(self._product)
        return Reply(200, self._body, content_type="image/jpeg")


def _reencode(jpeg: bytes) -> bytes:
    """The same photo as another seller would upload it: slightly smaller, recompressed."""
    img = Image.open(io.BytesIO(jpeg)).convert("RGB")
    img = img.resize((img.width * 9 // 10, img.height * 9 // 10), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


def _colour_name(rgb: tuple[int, int, int]) -> str:
    names = {
        "Brown": (142, 68, 42),
        "Black": (20, 20, 24),
        "Navy Blue": (32, 64, 122),
        "Maroon": (128, 30, 48),
        "Green": (60, 110, 70),
        "Beige": (225, 200, 150),
    }
    return min(names, key=lambda n: sum((a - b) ** 2 for a, b in zip(names[n], rgb, strict=True)))


def _jitter(rng: random.Random, rgb: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    r, g, b = (max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)
    return (r, g, b)


def render_bag(look: BrandLook, seed: int, size: int = 128) -> bytes:
    """One product photo of a ``look`` bag as JPEG bytes; the seed decides the variation."""
    rng = random.Random(seed)
    canvas = 256  # draw large, then downsample: smoother edges, like a real photo
    bg_level = rng.randint(200, 250)
    background = _jitter(rng, (bg_level, bg_level - rng.randint(0, 12), bg_level - 20), 8)
    img = Image.new("RGB", (canvas, canvas), background)

    body = _jitter(rng, look.palette[0], 14)
    accent = _jitter(rng, look.palette[-1], 14)
    scale = rng.uniform(0.6, 1.0)
    cx = canvas / 2 + rng.uniform(-30, 30)
    cy = canvas / 2 + rng.uniform(-15, 30)
    w, h = _shape_size(look.shape, scale)

    layer = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    _draw_handle(draw, look, box, accent if look.handle != "chain" else look.hardware, rng)
    _draw_body(draw, look.shape, box, body)
    _draw_pattern(layer, look.pattern, box, body, accent, rng)
    _draw_hardware(draw, look, box)

    angle = rng.uniform(-20, 20)  # pose
    layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, center=(cx, cy))
    if rng.random() < 0.5:  # shot from the other side
        layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    shadow = layer.split()[-1].filter(ImageFilter.GaussianBlur(6))
    img.paste((0, 0, 0), (6, 8), shadow.point(lambda a: int(a * 0.25)))
    img.paste(layer, (0, 0), layer)

    # Lighting: a brightness gradient across the frame, then sensor noise.
    light = Image.linear_gradient("L").resize((canvas, canvas)).rotate(rng.uniform(0, 360))
    img = Image.blend(img, Image.merge("RGB", (light, light, light)), rng.uniform(0.0, 0.12))
    noise = Image.effect_noise((canvas, canvas), rng.uniform(4, 14)).convert("RGB")
    img = Image.blend(img, noise, 0.06)
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=rng.randint(80, 92))
    return buffer.getvalue()


def _shape_size(shape: str, scale: float) -> tuple[float, float]:
    sizes = {
        "tote": (150, 120),
        "clutch": (170, 80),
        "hobo": (160, 110),
        "satchel": (140, 110),
        "bucket": (110, 140),
        "baguette": (175, 70),
    }
    w, h = sizes[shape]
    return w * scale, h * scale


def _draw_body(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, ...], colour: Any) -> None:
    x0, y0, x1, y1 = box
    if shape == "tote":  # trapezoid, wider at the top
        inset = (x1 - x0) * 0.12
        draw.polygon([(x0, y0), (x1, y0), (x1 - inset, y1), (x0 + inset, y1)], fill=colour)
    elif shape == "hobo":  # slouchy half-moon
        draw.pieslice((x0, y0 - (y1 - y0), x1, y1), 0, 180, fill=colour)
    elif shape == "bucket":  # tall with a rounded base
        draw.rounded_rectangle(box, radius=(x1 - x0) * 0.35, fill=colour)
    elif shape == "satchel":  # boxy with a flap
        draw.rounded_rectangle(box, radius=12, fill=colour)
        draw.polygon([(x0, y0), (x1, y0), ((x0 + x1) / 2, y0 + (y1 - y0) * 0.45)], fill=colour)
    else:  # clutch, baguette: long rounded rectangles
        draw.rounded_rectangle(box, radius=(y1 - y0) * 0.25, fill=colour)


def _draw_handle(
    draw: ImageDraw.ImageDraw,
    look: BrandLook,
    box: tuple[float, ...],
    colour: Any,
    rng: random.Random,
) -> None:
    x0, y0, x1, _ = box
    width = x1 - x0
    if look.handle == "arch":
        draw.arc(
            (x0 + width * 0.2, y0 - width * 0.45, x1 - width * 0.2, y0 + width * 0.2),
            180,
            360,
            fill=colour,
            width=9,
        )
    elif look.handle == "short":
        draw.arc(
            (x0 + width * 0.33, y0 - width * 0.22, x1 - width * 0.33, y0 + width * 0.12),
            180,
            360,
            fill=colour,
            width=7,
        )
    elif look.handle == "chain":
        for i in range(14):
            t = i / 13
            px = x0 + width * (0.1 + 0.8 * t)
            py = y0 - math.sin(t * math.pi) * width * 0.35
            draw.ellipse((px - 5, py - 4, px + 5, py + 4), outline=colour, width=2)


def _draw_pattern(
    layer: Image.Image,
    pattern: str,
    box: tuple[float, ...],
    body: Any,
    accent: Any,
    rng: random.Random,
) -> None:
    if pattern == "solid":
        return
    # Draw the pattern on its own layer and keep it only where the bag body is.
    mask = layer.split()[-1]
    overlay = Image.new("RGBA", layer.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    x0, y0, x1, y1 = (int(v) for v in box)
    step = rng.randint(12, 16)
    if pattern == "stripes":
        for x in range(x0, x1, step * 2):
            draw.rectangle((x, y0, x + step, y1), fill=accent)
    elif pattern == "checks":
        for x in range(x0, x1, step):
            draw.line((x, y0, x, y1), fill=accent, width=3)
        for y in range(y0, y1, step):
            draw.line((x0, y, x1, y), fill=accent, width=3)
    elif pattern == "dots":
        for x in range(x0, x1, step):
            for y in range(y0, y1, step):
                draw.ellipse((x, y, x + 5, y + 5), fill=accent)
    elif pattern == "quilted":
        for k in range(-(y1 - y0), x1 - x0, step):
            draw.line((x0 + k, y0, x0 + k + (y1 - y0), y1), fill=accent, width=2)
            draw.line((x0 + k, y1, x0 + k + (y1 - y0), y0), fill=accent, width=2)
    elif pattern == "monogram":
        for x in range(x0, x1, step + 6):
            for y in range(y0, y1, step + 6):
                draw.text((x, y), "F", fill=accent)
    clipped = Image.new("RGBA", layer.size, (0, 0, 0, 0))
    clipped.paste(
        overlay, (0, 0), Image.composite(overlay.split()[-1], mask.point(lambda _: 0), mask)
    )
    layer.alpha_composite(clipped)


def _draw_hardware(draw: ImageDraw.ImageDraw, look: BrandLook, box: tuple[float, ...]) -> None:
    x0, y0, x1, y1 = box
    cx = (x0 + x1) / 2
    cy = y0 + (y1 - y0) * (0.42 if look.shape == "satchel" else 0.3)
    r = 7
    if look.shape in ("clutch", "baguette"):
        draw.rectangle((cx - 12, cy - 5, cx + 12, cy + 5), fill=look.hardware)
    else:
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=look.hardware)
