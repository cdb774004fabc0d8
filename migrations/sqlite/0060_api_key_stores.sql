-- The stores a key may act for, comma-separated (`shop-42,shop-43`; a store id never holds a
-- comma); null covers every store, as every key did before.
alter table api_keys add column stores text;
