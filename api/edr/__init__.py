"""The EDR-style data API: collections, position / area / cube queries, their documents (CoverageJSON,
compact JSON, NetCDF), HTTP caching and the point query's fast path."""
