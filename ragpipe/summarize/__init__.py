"""Summaries of documents: map-reduce over their chunks, checked sentence by sentence.

    chunks --groups that fit the budget--> map (notes per group, in order) --> reduce
      --> draft --links removed--> every sentence checked against the document --> summary
    summaries --> roll-up: an overview of the set (or of each folder), citing documents

Pure logic over chunks and a generator (only ``n_ctx``, ``count_prompt_tokens`` and
``stream``); the pipeline (pipeline/summarize.py) finds the documents, runs this and
writes the output folder (``output``). Modules: ``templates`` (the prompts and their
version), ``mapreduce`` (budgeted groups, generation with loops and reasoning cut),
``check`` (sentence support), ``document`` (one document's summary), ``rollup``,
``records`` (the typed results and their JSON shape), ``output`` (files on disk).
"""

from .check import check_summary
from .document import SummaryOptions, summarize_document
from .output import SummaryFolder
from .records import DocumentSummary, Passage, SummarySentence, output_key
from .rollup import RollupPart
from .templates import STYLES

__all__ = [
    "STYLES", "DocumentSummary", "Passage", "RollupPart", "SummaryFolder", "SummaryOptions",
    "SummarySentence", "check_summary", "output_key", "summarize_document",
]
