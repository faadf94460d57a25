"""Real data in and out: mappings from source layouts to the store's contract, and exports of
a store in such a layout (``posaudit export --layout``)."""
