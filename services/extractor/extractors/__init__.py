"""The extractors, one module each, imported lazily by ``services.extractor.registry``."""
