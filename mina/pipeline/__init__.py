"""The chunk pipeline and post-processing: state machines driven by the database."""
