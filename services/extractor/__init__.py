"""The extractor service. Resolves HLS streams into the streams KV (extraction logic: issue 4)."""
