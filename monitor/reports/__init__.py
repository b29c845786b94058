"""Weekly reliability reports.  The figures of one ISO week (``figures``, from rollups and incidents)
fill the model (``model``) that every output is rendered from: the documented JSON (``schema``), HTML,
Markdown and charts; ``weeks`` does the week arithmetic in the site timezone.  Archiving, delivery and
scheduling build on those."""
