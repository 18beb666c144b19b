"""The catalog (ORD-5): products, regions, billing items, versioned price lists,
per-account discounts, contract and fixed prices, and the pricing entry point
``catalog.service.quote``."""
