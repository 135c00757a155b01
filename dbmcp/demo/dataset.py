"""The demo's sample database: a small online store in schema `store`, generated deterministically.

Every value is computed server-side from generate_series and integer arithmetic on the series number (no
random(), no now()), so two loads at the same scale are byte-identical. At scale 1.0: 20k customers, 25k
addresses, 2k products in 50 categories, 5 warehouses, 40k orders spread over 2024-2025 with ~100k order
items, ~38k payments and 10k reviews; it loads in a few seconds. Tables carry primary and foreign keys,
secondary indexes (unique, partial, multi-column) and comments; there is a view (`order_summary`), a
materialized view (`daily_revenue`), and columns of type jsonb, numeric(12,2), timestamptz, date, uuid, text[],
boolean, bytea and interval. Edge values: NULLs in nullable columns, a free product (0.00), one at 12345.67,
cancelled orders. `customer_secrets` exists so operators can show how an allowlist hides a table.
"""

from __future__ import annotations

from string import Template

import asyncpg

SCHEMA_SQL = """
CREATE SCHEMA store;
COMMENT ON SCHEMA store IS 'Sample online store (dbmcp demo)';

CREATE TABLE store.warehouses (
  id int PRIMARY KEY, code text NOT NULL UNIQUE, city text NOT NULL, country_code char(2) NOT NULL);
COMMENT ON TABLE store.warehouses IS 'Warehouses that hold stock';
COMMENT ON COLUMN store.warehouses.code IS 'Short internal code, e.g. BER1';
COMMENT ON COLUMN store.warehouses.country_code IS 'ISO 3166-1 alpha-2 country';

CREATE TABLE store.categories (
  id int PRIMARY KEY, parent_id int REFERENCES store.categories(id), name text NOT NULL);
COMMENT ON TABLE store.categories IS 'Product categories, as a tree';
COMMENT ON COLUMN store.categories.parent_id IS 'Parent category; NULL for a top-level category';
COMMENT ON COLUMN store.categories.name IS 'Display name';

CREATE TABLE store.customers (
  id bigint PRIMARY KEY,
  public_id uuid NOT NULL UNIQUE,
  email text NOT NULL UNIQUE,
  full_name text NOT NULL,
  country_code char(2) NOT NULL,
  birth_date date,
  created_at timestamptz NOT NULL,
  marketing_opt_in boolean NOT NULL DEFAULT false,
  tags text[] NOT NULL DEFAULT '{}');
COMMENT ON TABLE store.customers IS 'People who have an account in the store';
COMMENT ON COLUMN store.customers.public_id IS 'Identifier shown to the customer (URLs, emails)';
COMMENT ON COLUMN store.customers.full_name IS 'Name as given at sign-up';
COMMENT ON COLUMN store.customers.email IS 'Login and contact address, unique';
COMMENT ON COLUMN store.customers.country_code IS 'ISO 3166-1 alpha-2 country of residence';
COMMENT ON COLUMN store.customers.birth_date IS 'Date of birth; NULL when not given';
COMMENT ON COLUMN store.customers.created_at IS 'When the account was opened';
COMMENT ON COLUMN store.customers.marketing_opt_in IS 'Agreed to receive marketing email';
COMMENT ON COLUMN store.customers.tags IS 'Segmentation tags set by marketing';
CREATE INDEX customers_country_created_idx ON store.customers (country_code, created_at);

CREATE TABLE store.addresses (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES store.customers(id),
  line1 text NOT NULL, city text NOT NULL, postal_code text, country_code char(2) NOT NULL,
  is_default boolean NOT NULL DEFAULT false);
COMMENT ON TABLE store.addresses IS 'Shipping addresses of customers';
COMMENT ON COLUMN store.addresses.customer_id IS 'Customer the address belongs to';
COMMENT ON COLUMN store.addresses.line1 IS 'Street and number';
COMMENT ON COLUMN store.addresses.postal_code IS 'Postal code; NULL when unknown';
COMMENT ON COLUMN store.addresses.is_default IS 'The customer''s default address (at most one each)';
CREATE INDEX addresses_customer_idx ON store.addresses (customer_id);
CREATE UNIQUE INDEX addresses_one_default_idx ON store.addresses (customer_id) WHERE is_default;

CREATE TABLE store.products (
  id int PRIMARY KEY,
  sku text NOT NULL UNIQUE,
  name text NOT NULL,
  category_id int NOT NULL REFERENCES store.categories(id),
  price numeric(12,2) NOT NULL CHECK (price >= 0),
  attributes jsonb NOT NULL DEFAULT '{}',
  active boolean NOT NULL DEFAULT true,
  launched_on date NOT NULL,
  thumbnail_sha bytea);
COMMENT ON TABLE store.products IS 'Catalogue of products for sale';
COMMENT ON COLUMN store.products.sku IS 'Stock keeping unit, unique';
COMMENT ON COLUMN store.products.name IS 'Display name';
COMMENT ON COLUMN store.products.category_id IS 'Leaf category of the product';
COMMENT ON COLUMN store.products.price IS 'Current list price in EUR';
COMMENT ON COLUMN store.products.attributes IS 'Free-form attributes: color, weight_g, size';
COMMENT ON COLUMN store.products.active IS 'Still sold; false for discontinued products';
COMMENT ON COLUMN store.products.launched_on IS 'Date the product was first offered';
COMMENT ON COLUMN store.products.thumbnail_sha IS 'First 6 bytes of the thumbnail image hash';
CREATE INDEX products_category_idx ON store.products (category_id);

CREATE TABLE store.inventory (
  product_id int NOT NULL REFERENCES store.products(id),
  warehouse_id int NOT NULL REFERENCES store.warehouses(id),
  quantity int NOT NULL CHECK (quantity >= 0),
  restocked_on date,
  PRIMARY KEY (product_id, warehouse_id));
COMMENT ON TABLE store.inventory IS 'Units in stock per product and warehouse';
COMMENT ON COLUMN store.inventory.quantity IS 'Units on hand';
COMMENT ON COLUMN store.inventory.restocked_on IS 'Last delivery from the supplier; NULL if never';

CREATE TABLE store.orders (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES store.customers(id),
  shipping_address_id bigint REFERENCES store.addresses(id),
  status text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')),
  ordered_at timestamptz NOT NULL,
  total numeric(12,2) NOT NULL DEFAULT 0,
  delivery_time interval);
COMMENT ON TABLE store.orders IS 'Orders placed by customers';
COMMENT ON COLUMN store.orders.customer_id IS 'Customer who placed the order';
COMMENT ON COLUMN store.orders.shipping_address_id IS 'Where to ship; NULL for click-and-collect';
COMMENT ON COLUMN store.orders.status IS 'pending, paid, shipped, delivered or cancelled';
COMMENT ON COLUMN store.orders.ordered_at IS 'When the order was placed';
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
COMMENT ON COLUMN store.order_items.line_no IS 'Line number within the order, from 1';
COMMENT ON COLUMN store.order_items.quantity IS 'Units ordered';
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
COMMENT ON COLUMN store.payments.method IS 'card, paypal, bank_transfer or gift_card';
COMMENT ON COLUMN store.payments.amount IS 'Amount received in EUR';
COMMENT ON COLUMN store.payments.paid_at IS 'When the payment was confirmed';
COMMENT ON COLUMN store.payments.details IS 'Processor response (card brand, 3-D Secure); NULL if none';
CREATE INDEX payments_order_idx ON store.payments (order_id);

CREATE TABLE store.reviews (
  id bigint PRIMARY KEY,
  product_id int NOT NULL REFERENCES store.products(id),
  customer_id bigint NOT NULL REFERENCES store.customers(id),
  rating smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
  body text,
  created_at timestamptz NOT NULL);
COMMENT ON TABLE store.reviews IS 'Product reviews written by customers';
COMMENT ON COLUMN store.reviews.rating IS 'Stars, 1 to 5';
COMMENT ON COLUMN store.reviews.body IS 'Review text; NULL for a rating without text';
COMMENT ON COLUMN store.reviews.created_at IS 'When the review was posted';
CREATE INDEX reviews_product_idx ON store.reviews (product_id);

CREATE TABLE store.customer_secrets (
  customer_id bigint PRIMARY KEY REFERENCES store.customers(id),
  api_token text NOT NULL,
  card_last4 text);
COMMENT ON TABLE store.customer_secrets IS 'Sensitive data: excluded from dbmcp by the demo config';
COMMENT ON COLUMN store.customer_secrets.api_token IS 'Personal API token (secret)';
COMMENT ON COLUMN store.customer_secrets.card_last4 IS 'Last four digits of the saved card';
"""

# Row counts at scale 1.0 of the tables that grow with the scale (the others are fixed or derived).
SIZES = {"customers": 20_000, "addresses": 25_000, "products": 2_000, "orders": 40_000, "reviews": 10_000,
         "secrets": 500}

# $name stands for SIZES[name] at the chosen scale. h = i * 2654435761 % 4294967291 scrambles the series
# number i deterministically wherever the data should look random. Picks are skewed: n - x * x / n for x in
# [0, n) favours the newest products (and spares the 0.00 and 12345.67 ones); older customers order more.
_LOAD = [
    """INSERT INTO store.warehouses VALUES (1, 'BER1', 'Berlin', 'DE'), (2, 'LYS1', 'Lyon', 'FR'),
         (3, 'MAD1', 'Madrid', 'ES'), (4, 'MXP1', 'Milan', 'IT'), (5, 'WAW1', 'Warsaw', 'PL')""",
    """INSERT INTO store.categories
       SELECT i, nullif(top, i),
         (ARRAY['Books','Garden','Kitchen','Toys','Sports','Music','Office','Beauty','Tools','Games'])[top]
         || CASE WHEN i > 10 THEN ' / ' || (ARRAY['Basics','Premium','Outlet','Kids'])[(i - 1) / 10] ELSE '' END
       FROM generate_series(1, 50) i, LATERAL (SELECT CASE WHEN i > 10 THEN 1 + i % 10 ELSE i END AS top) t""",
    """INSERT INTO store.customers
       SELECT i, md5('customer' || i)::uuid, 'customer' || i || '@example.com',
         (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Margaret','Linus'])[1 + i % 8] || ' ' ||
         (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Hamilton','Torvalds'])[1 + i / 8 % 8],
         (ARRAY['DE','FR','ES','IT','PL','NL','SE','US','GB','DE'])[1 + i * 7 % 10],
         CASE WHEN i % 4 <> 0 THEN date '1950-01-01' + (i * 7919 % 18000)::int END,
         timestamptz '2023-01-01 00:00:00+00' + (i * 1297 % 31536000) * interval '1 second',
         i % 3 = 0,
         CASE i % 5 WHEN 0 THEN '{vip}'::text[] WHEN 1 THEN '{newsletter,returning}' ELSE '{}' END
       FROM generate_series(1, $customers::bigint) i""",
    """INSERT INTO store.addresses
       SELECT i, 1 + (i - 1) % $customers,
         (i * 37 % 900 + 1) || ' ' || (ARRAY['Main Street','Station Road','Church Lane','Park Avenue'])[1 + i % 4],
         (ARRAY['Berlin','Lyon','Madrid','Milan','Warsaw','Utrecht','Malmo','Boston'])[1 + i % 8],
         CASE WHEN i % 11 <> 0 THEN lpad((i * 131 % 99999)::text, 5, '0') END,
         (ARRAY['DE','FR','ES','IT','PL','NL','SE','US'])[1 + i % 8], i <= $customers
       FROM generate_series(1, $addresses::bigint) i""",
    """INSERT INTO store.products
       SELECT i, 'SKU-' || lpad(i::text, 6, '0'),
         (ARRAY['Classic','Compact','Deluxe','Eco','Travel','Smart','Vintage'])[1 + i % 7] || ' ' ||
         (ARRAY['Lamp','Mug','Chair','Kite','Ball','Pen','Brush','Saw','Puzzle','Novel'])[1 + i / 7 % 10],
         11 + i % 40,
         CASE WHEN i = 1 THEN 0.00 WHEN i = 2 THEN 12345.67 WHEN i % 97 = 0 THEN 500 + i % 1500
              ELSE round(1 + (i * 7919 % 20000) / 100.0, 2) END,
         jsonb_build_object('color', (ARRAY['red','green','blue','black'])[1 + i % 4], 'weight_g', 50 + i * 37 % 950)
           || CASE WHEN i % 3 = 0 THEN jsonb_build_object('size', (ARRAY['S','M','L','XL'])[1 + i / 3 % 4])
                   ELSE '{}' END,
         i % 17 <> 0,
         date '2022-01-01' + (i * 113 % 1000)::int,
         CASE WHEN i % 4 <> 0 THEN substring(decode(md5('thumb' || i), 'hex') FROM 1 FOR 6) END
       FROM generate_series(1, $products::bigint) i""",
    """INSERT INTO store.inventory
       SELECT p, w, (p * 31 + w * 17) % 250,
         CASE WHEN (p + w) % 9 <> 0 THEN date '2025-12-31' - (p * 7 + w * 3) % 120 END
       FROM generate_series(1, $products) p, generate_series(1, 5) w""",
    # Order lines first, in a scratch table, so that orders get their totals on insert: 1 to 4 lines an order.
    """CREATE TEMP TABLE items ON COMMIT DROP AS
       SELECT o, l, p.id AS product, (ARRAY[1,1,1,1,2,2,3,5])[1 + (h / 7 + l) % 8] AS quantity, p.price
       FROM (SELECT o, o * 2654435761 % 4294967291 AS h FROM generate_series(1, $orders::bigint) o) g
       CROSS JOIN LATERAL generate_series(1, 1 + (h % 4)::int) l
       CROSS JOIN LATERAL (SELECT (h / 4 + l * 7919) % $products AS x) k
       JOIN store.products p ON p.id = $products - x * x / $products""",
    # Ids follow time over 2024-2025; 5% are cancelled; the newest 2% are still pending, paid or shipped.
    """INSERT INTO store.orders
       SELECT i, c, CASE WHEN i % 13 <> 0 THEN c END, s,
         timestamptz '2024-01-01 00:00:00+00' + ((i - 1) * 63072000 / $orders + h % 1800) * interval '1 second',
         t.total,
         CASE WHEN s = 'delivered' THEN (20 + h / 100 % 150) * interval '1 hour' + h % 60 * interval '1 minute' END
       FROM (SELECT i, h, 1 + x * (x + $customers) / (2 * $customers) AS c,
               CASE WHEN h / 1000 % 100 < 5 THEN 'cancelled'
                    WHEN i > $orders - $orders / 50 THEN (ARRAY['pending','paid','shipped'])[1 + h % 3]
                    ELSE 'delivered' END AS s
             FROM (SELECT i, i * 2654435761 % 4294967291 AS h, i * 40503 % 1000003 % $customers AS x
                   FROM generate_series(1, $orders::bigint) i) g) o
       JOIN (SELECT o, sum(quantity * price) AS total FROM items GROUP BY o) t ON t.o = i""",
    "INSERT INTO store.order_items SELECT o, l, product, quantity, price FROM items",
    """INSERT INTO store.payments
       SELECT row_number() OVER (ORDER BY id), id, method, total, ordered_at + (3 + id % 57) * interval '1 minute',
         CASE method
           WHEN 'card' THEN jsonb_build_object('brand', (ARRAY['visa','mastercard','amex'])[1 + id % 3],
                                               'three_ds', id % 2 = 0, 'auth_code', upper(left(md5('a' || id), 6)))
           WHEN 'paypal' THEN '{"payer_status": "verified"}' END
       FROM (SELECT id, total, ordered_at,
               (ARRAY['card','card','card','paypal','bank_transfer','gift_card'])[1 + id % 6] AS method
             FROM store.orders WHERE status NOT IN ('pending', 'cancelled')) o""",
    """INSERT INTO store.reviews
       SELECT i, $products - h % $products * (h % $products) / $products, 1 + h / 3 % $customers,
         (ARRAY[1,2,3,3,4,4,5,5,5,5])[1 + h % 10],
         CASE WHEN i % 6 <> 0 THEN (ARRAY['Great value.','Broke after a week.','Exactly as described.',
           'Slow delivery, good product.','Would buy again.'])[1 + h / 10 % 5] END,
         timestamptz '2024-02-01 00:00:00+00' + (i * 4421 % 60000000) * interval '1 second'
       FROM (SELECT i, i * 2654435761 % 4294967291 AS h FROM generate_series(1, $reviews::bigint) i) g""",
    """INSERT INTO store.customer_secrets
       SELECT i, 'tok_' || md5('secret' || i), CASE WHEN i % 7 <> 0 THEN lpad((i * 7 % 10000)::text, 4, '0') END
       FROM generate_series(1, least($secrets, $customers)) i""",
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
COMMENT ON COLUMN store.daily_revenue.revenue IS 'Sum of order totals in EUR';
"""

TABLES = ["warehouses", "categories", "customers", "addresses", "products", "inventory", "orders",
          "order_items", "payments", "reviews", "customer_secrets"]


async def load(conn: asyncpg.Connection, *, scale: float = 1.0) -> dict[str, int]:
    """Create the schema and fill it deterministically; return {table_name: row_count}."""
    sizes = {name: max(10, round(rows * scale)) for name, rows in SIZES.items()}  # plain ints: safe to inline
    async with conn.transaction():
        await conn.execute(SCHEMA_SQL)
        for statement in _LOAD:
            await conn.execute(Template(statement).substitute(sizes))
        await conn.execute(VIEWS_SQL)
    await conn.execute("ANALYZE")
    return {t: await conn.fetchval(f"SELECT count(*) FROM store.{t}") for t in TABLES}
