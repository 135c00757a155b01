"""The demo's sample database: a small online store in schema `store`, generated deterministically.

Everything is computed server-side from generate_series and integer arithmetic (no random(), no now()), so
every load is byte-identical. At scale 1.0: ~20k customers, 2k products, 40k orders, ~100k order items,
loaded in a few seconds. Tables carry primary and foreign keys, secondary indexes and comments; there is a
view (`order_summary`), a materialized view (`daily_revenue`), and columns of type jsonb, numeric,
timestamptz, date, uuid, text[], boolean, bytea and interval. `customer_secrets` exists to show allowlists.
"""

from __future__ import annotations

import asyncpg

SCHEMA_SQL = """
CREATE SCHEMA store;
COMMENT ON SCHEMA store IS 'Sample online store (dbmcp demo)';

CREATE TABLE store.warehouses (
  id int PRIMARY KEY, code text NOT NULL UNIQUE, city text NOT NULL, country_code char(2) NOT NULL);
COMMENT ON TABLE store.warehouses IS 'Warehouses that hold stock';

CREATE TABLE store.categories (
  id int PRIMARY KEY, parent_id int REFERENCES store.categories(id), name text NOT NULL);
COMMENT ON TABLE store.categories IS 'Product categories, as a tree (parent_id)';
COMMENT ON COLUMN store.categories.parent_id IS 'Parent category; NULL for a top-level category';

CREATE TABLE store.customers (
  id bigint PRIMARY KEY,
  public_id uuid NOT NULL UNIQUE,
  email text NOT NULL UNIQUE,
  full_name text NOT NULL,
  country_code char(2) NOT NULL,
  created_at timestamptz NOT NULL,
  marketing_opt_in boolean NOT NULL DEFAULT false,
  tags text[] NOT NULL DEFAULT '{}');
COMMENT ON TABLE store.customers IS 'People who have an account in the store';
COMMENT ON COLUMN store.customers.public_id IS 'Identifier shown to the customer (URLs, emails)';
COMMENT ON COLUMN store.customers.country_code IS 'ISO 3166-1 alpha-2 country of residence';
COMMENT ON COLUMN store.customers.tags IS 'Segmentation tags set by marketing';
CREATE INDEX customers_country_created_idx ON store.customers (country_code, created_at);

CREATE TABLE store.addresses (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES store.customers(id),
  line1 text NOT NULL, city text NOT NULL, postal_code text, country_code char(2) NOT NULL,
  is_default boolean NOT NULL DEFAULT false);
COMMENT ON TABLE store.addresses IS 'Shipping addresses of customers';
CREATE INDEX addresses_customer_idx ON store.addresses (customer_id);

CREATE TABLE store.products (
  id int PRIMARY KEY,
  sku text NOT NULL UNIQUE,
  name text NOT NULL,
  category_id int NOT NULL REFERENCES store.categories(id),
  price numeric(12,2) NOT NULL CHECK (price >= 0),
  attributes jsonb NOT NULL DEFAULT '{}',
  active boolean NOT NULL DEFAULT true,
  thumbnail_sha bytea);
COMMENT ON TABLE store.products IS 'Catalogue of products for sale';
COMMENT ON COLUMN store.products.price IS 'Current list price in EUR';
COMMENT ON COLUMN store.products.attributes IS 'Free-form attributes: color, weight_g, size ...';
COMMENT ON COLUMN store.products.thumbnail_sha IS 'First bytes of the thumbnail image hash';
CREATE INDEX products_category_idx ON store.products (category_id);

CREATE TABLE store.inventory (
  product_id int NOT NULL REFERENCES store.products(id),
  warehouse_id int NOT NULL REFERENCES store.warehouses(id),
  quantity int NOT NULL CHECK (quantity >= 0),
  PRIMARY KEY (product_id, warehouse_id));
COMMENT ON TABLE store.inventory IS 'Units in stock per product and warehouse';

CREATE TABLE store.orders (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES store.customers(id),
  shipping_address_id bigint REFERENCES store.addresses(id),
  status text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')),
  ordered_at timestamptz NOT NULL,
  total numeric(12,2) NOT NULL DEFAULT 0,
  delivery_time interval);
COMMENT ON TABLE store.orders IS 'Orders placed by customers';
COMMENT ON COLUMN store.orders.total IS 'Sum of the order items in EUR';
COMMENT ON COLUMN store.orders.delivery_time IS 'Time from order to delivery; NULL until delivered';
CREATE INDEX orders_customer_idx ON store.orders (customer_id);
CREATE INDEX orders_status_ordered_idx ON store.orders (status, ordered_at);

CREATE TABLE store.order_items (
  order_id bigint NOT NULL REFERENCES store.orders(id),
  line_no int NOT NULL,
  product_id int NOT NULL REFERENCES store.products(id),
  quantity int NOT NULL CHECK (quantity > 0),
  unit_price numeric(12,2) NOT NULL,
  PRIMARY KEY (order_id, line_no));
COMMENT ON TABLE store.order_items IS 'Lines of each order';
COMMENT ON COLUMN store.order_items.unit_price IS 'Price per unit when the order was placed';
CREATE INDEX order_items_product_idx ON store.order_items (product_id);

CREATE TABLE store.payments (
  id bigint PRIMARY KEY,
  order_id bigint NOT NULL REFERENCES store.orders(id),
  method text NOT NULL,
  amount numeric(12,2) NOT NULL,
  paid_at timestamptz NOT NULL,
  details jsonb);
COMMENT ON TABLE store.payments IS 'Payments received for orders';
COMMENT ON COLUMN store.payments.details IS 'Processor response (card brand, 3-D Secure ...)';
CREATE INDEX payments_order_idx ON store.payments (order_id);

CREATE TABLE store.reviews (
  id bigint PRIMARY KEY,
  product_id int NOT NULL REFERENCES store.products(id),
  customer_id bigint NOT NULL REFERENCES store.customers(id),
  rating smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
  body text,
  created_at timestamptz NOT NULL);
COMMENT ON TABLE store.reviews IS 'Product reviews written by customers';
CREATE INDEX reviews_product_idx ON store.reviews (product_id);

CREATE TABLE store.customer_secrets (
  customer_id bigint PRIMARY KEY REFERENCES store.customers(id),
  api_token text NOT NULL,
  card_last4 text);
COMMENT ON TABLE store.customer_secrets IS 'Sensitive data: excluded from dbmcp by the demo config';
"""

_BASE = "timestamptz '2024-01-01 00:00:00+00'"

# Each statement takes {n}: the row count for its table at the chosen scale.
_DATA: list[tuple[str, int, str]] = [
    ("warehouses", 5, """
INSERT INTO store.warehouses
SELECT i, 'WH' || i, (ARRAY['Berlin','Lyon','Madrid','Milan','Warsaw'])[i], (ARRAY['DE','FR','ES','IT','PL'])[i]
FROM generate_series(1, 5) i"""),
    ("categories", 50, """
INSERT INTO store.categories
SELECT i, CASE WHEN i > 10 THEN 1 + (i % 10) END,
       (ARRAY['Books','Garden','Kitchen','Toys','Sports','Music','Office','Beauty','Tools','Games'])[1 + i % 10]
       || CASE WHEN i > 10 THEN ' / sub ' || i ELSE '' END
FROM generate_series(1, 50) i"""),
    ("customers", 20_000, """
INSERT INTO store.customers
SELECT i, md5('customer' || i)::uuid, 'customer' || i || '@example.com',
       (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Margaret','Linus'])[1 + i % 8] || ' '
       || (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Hamilton','Torvalds'])[1 + (i / 8) % 8],
       (ARRAY['DE','FR','ES','IT','PL','NL','SE','US'])[1 + (i * 7) % 8],
       {base} + (i * 1297 % 63072000) * interval '1 second',
       i % 3 = 0,
       CASE i % 5 WHEN 0 THEN ARRAY['vip'] WHEN 1 THEN ARRAY['newsletter','returning'] ELSE '{}'::text[] END
FROM generate_series(1, {n}) i"""),
    ("addresses", 25_000, """
INSERT INTO store.addresses
SELECT i, 1 + (i - 1) % {customers}, (i * 37 % 900 + 1) || ' Main Street',
       (ARRAY['Berlin','Lyon','Madrid','Milan','Warsaw','Utrecht','Malmo','Boston'])[1 + i % 8],
       CASE WHEN i % 11 = 0 THEN NULL ELSE lpad((i * 131 % 99999)::text, 5, '0') END,
       (ARRAY['DE','FR','ES','IT','PL','NL','SE','US'])[1 + i % 8], i <= {customers}
FROM generate_series(1, {n}) i"""),
    ("products", 2_000, """
INSERT INTO store.products
SELECT i, 'SKU-' || lpad(i::text, 6, '0'),
       (ARRAY['Lamp','Mug','Chair','Kite','Ball','Pen','Brush','Saw','Puzzle','Novel'])[1 + i % 10] || ' model ' || i,
       1 + i % 50,
       CASE WHEN i = 1 THEN 0.00 WHEN i = 2 THEN 12345.67 ELSE round(((i * 7919) % 20000) / 100.0 + 1, 2) END,
       jsonb_build_object('color', (ARRAY['red','green','blue','black'])[1 + i % 4], 'weight_g', 50 + i % 950)
         || CASE WHEN i % 3 = 0 THEN '{"size": "L"}'::jsonb ELSE '{}'::jsonb END,
       i % 17 <> 0,
       CASE WHEN i % 4 = 0 THEN NULL ELSE substring(decode(md5('thumb' || i), 'hex') from 1 for 6) END
FROM generate_series(1, {n}) i"""),
    ("inventory", 10_000, """
INSERT INTO store.inventory
SELECT p, w, (p * 31 + w * 17) % 250
FROM generate_series(1, {products}) p, generate_series(1, 5) w"""),
    ("orders", 40_000, """
INSERT INTO store.orders
SELECT i, c, CASE WHEN i % 13 = 0 THEN NULL ELSE c END,
       s, {base} + (i * 1579 % 63072000) * interval '1 second', 0,
       CASE WHEN s = 'delivered' THEN (24 + i % 120) * interval '1 hour' END
FROM (SELECT i, 1 + (i * 7) % {customers} AS c,
             (ARRAY['pending','paid','shipped','delivered','delivered','delivered','cancelled'])[1 + i % 7] AS s
      FROM generate_series(1, {n}) i) o"""),
    ("order_items", 100_000, """
INSERT INTO store.order_items
SELECT o, l, p, 1 + (o + l) % 4, pr.price
FROM (SELECT o, l, 1 + (o * 13 + l * 101) % {products} AS p
      FROM generate_series(1, {orders}) o, generate_series(1, 1 + ((o * 2654435761) % 4)::int) l) x
JOIN store.products pr ON pr.id = x.p"""),
    ("order_totals", 0, """
UPDATE store.orders o SET total = t.total
FROM (SELECT order_id, sum(quantity * unit_price) AS total FROM store.order_items GROUP BY order_id) t
WHERE t.order_id = o.id"""),
    ("payments", 38_000, """
INSERT INTO store.payments
SELECT o.id, o.id, (ARRAY['card','card','paypal','bank_transfer'])[1 + o.id % 4], o.total,
       o.ordered_at + (o.id % 90) * interval '1 minute',
       CASE o.id % 4 WHEN 0 THEN NULL
            ELSE jsonb_build_object('brand', (ARRAY['visa','mastercard','amex'])[1 + o.id % 3],
                                 'three_ds', o.id % 2 = 0)
       END
FROM store.orders o WHERE o.status <> 'pending' AND o.status <> 'cancelled'"""),
    ("reviews", 10_000, """
INSERT INTO store.reviews
SELECT i, 1 + (i * 17) % {products}, 1 + (i * 29) % {customers}, 1 + (i * i) % 5,
       CASE WHEN i % 6 = 0 THEN NULL ELSE (ARRAY['Great value.','Broke after a week.','Exactly as described.',
            'Slow delivery, good product.','Would buy again.'])[1 + i % 5] END,
       timestamptz '2024-02-01 00:00:00+00' + (i * 4421 % 60000000) * interval '1 second'
FROM generate_series(1, {n}) i"""),
    ("customer_secrets", 500, """
INSERT INTO store.customer_secrets
SELECT i, 'tok_' || md5('secret' || i), lpad((i * 7 % 10000)::text, 4, '0')
FROM generate_series(1, least({n}, {customers})) i"""),
]

VIEWS_SQL = """
CREATE VIEW store.order_summary AS
SELECT o.id AS order_id, c.email, o.status, o.ordered_at, count(i.line_no) AS item_count, o.total
FROM store.orders o
JOIN store.customers c ON c.id = o.customer_id
LEFT JOIN store.order_items i ON i.order_id = o.id
GROUP BY o.id, c.email;
COMMENT ON VIEW store.order_summary IS 'One row per order with the customer email and item count';

CREATE MATERIALIZED VIEW store.daily_revenue AS
SELECT (ordered_at AT TIME ZONE 'UTC')::date AS day, count(*) AS orders, sum(total) AS revenue
FROM store.orders WHERE status <> 'cancelled'
GROUP BY 1 ORDER BY 1;
COMMENT ON MATERIALIZED VIEW store.daily_revenue IS 'Revenue per day (UTC), cancelled orders excluded';
"""

TABLES = ["warehouses", "categories", "customers", "addresses", "products", "inventory", "orders",
          "order_items", "payments", "reviews", "customer_secrets"]


async def load(conn: asyncpg.Connection, *, scale: float = 1.0) -> dict[str, int]:
    """Create the schema and fill it deterministically; return {table: row count}."""
    counts = {name: max(5, int(base * scale)) for name, base, _ in _DATA}
    counts["warehouses"], counts["categories"] = 5, 50
    async with conn.transaction():
        await conn.execute(SCHEMA_SQL)
        for name, _, sql in _DATA:
            for key, value in {"n": counts[name], "base": _BASE, **counts}.items():
                sql = sql.replace("{" + key + "}", str(value))
            await conn.execute(sql)
        await conn.execute(VIEWS_SQL)
    await conn.execute("ANALYZE")
    return {t: await conn.fetchval(f"SELECT count(*) FROM store.{t}") for t in TABLES}  # noqa: S608 - fixed names
