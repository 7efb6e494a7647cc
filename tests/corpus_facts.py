"""Retrieval facts for the sample corpus in corpus/.

Each entry is (question, expected_file, expected_phrase): the question is answered by exactly one
corpus file (named relative to corpus/), and expected_phrase appears verbatim in that file's
extracted text and in no other corpus file.
"""

FACTS: list[tuple[str, str, str]] = [
    (
        "What is the minimum number of characters a password must have?",
        "it-security-policy.pdf",
        "14 characters",
    ),
    (
        "Which mailbox do I write to when I report a suspected security incident?",
        "it-security-policy.pdf",
        "security@northwind-analytics.example",
    ),
    (
        "How much is the daily per diem allowance when travelling to a Tier 1 city such as London?",
        "travel-policy.pdf",
        "EUR 95",
    ),
    (
        "Which form is used to claim travel expenses after a business trip?",
        "travel-policy.pdf",
        "TR-7",
    ),
    (
        "How long does the probation period last for a new starter on a Dutch contract?",
        "onboarding-guide.md",
        "2 months",
    ),
    (
        "Above which amount must I upload an itemised receipt for an expense?",
        "expenses-faq.txt",
        "EUR 25",
    ),
    (
        "What is the monthly spending limit of the standard corporate card?",
        "expenses-faq.txt",
        "EUR 2,500",
    ),
    (
        "How large is the one-off home-office stipend for setting up a workplace at home?",
        "remote-work.html",
        "EUR 750",
    ),
    (
        "For how many days per calendar year am I allowed to work from abroad?",
        "remote-work.html",
        "20 working days",
    ),
    (
        "How many unused annual leave days can I carry over into the next year?",
        "holidays-and-leave.md",
        "8 days",
    ),
]
