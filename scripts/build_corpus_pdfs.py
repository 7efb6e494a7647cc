"""Build the two sample PDFs in corpus/ from the text held in this script.

Run from anywhere:  python3 scripts/build_corpus_pdfs.py
The output is deterministic, so re-running it leaves the committed files unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.pdfmaker import MAX_LINES, layout_lines, make_pdf  # noqa: E402

CORPUS = REPO_ROOT / "corpus"

TRAVEL_POLICY = [
    """\
NORTHWIND ANALYTICS B.V. - BUSINESS TRAVEL POLICY
Document owner: Finance Operations (Joris Bakker, Head of Finance Operations)
Version 3.2, effective 1 February 2024. Replaces version 3.1.

1. Purpose and scope

This policy sets out how employees and contractors of Northwind Analytics plan, book and claim
business travel. It applies to every trip paid for by the company, including client visits,
conferences, training courses and travel between our Utrecht and Manchester offices. Travel
paid for by a client under a statement of work follows this policy unless the client contract
sets stricter limits, in which case the client limits apply.

2. Approval before travel

Every trip must be approved in advance by your line manager. Trips with an estimated total cost
above EUR 3,000, and all trips outside Europe, also need written approval from the practice
director, recorded on form TR-2 (Travel Pre-Approval). Bookings made without approval may not
be reimbursed. Please request approval at least 14 calendar days before departure so that the
travel desk can find reasonable fares.

3. Booking through the travel desk

All flights, trains and hotels are booked through Meridian Travel Desk, our contracted travel
management company. Contact Meridian at travel@northwind-analytics.example or by phone on
extension 4410 (+31 30 555 4410 from outside the office), Monday to Friday 08:00-18:00 CET.
Do not book directly with airlines or hotel websites unless Meridian confirms in writing that it
cannot offer the same fare; attach that confirmation to your claim.

4. Choice of transport

Rail is the default for journeys that take under 4 hours door to door, for example Utrecht to
Brussels, Paris or Frankfurt. Air travel is booked in economy class. Business class is allowed
only when the scheduled flight time of a single leg is more than 6 hours, such as Amsterdam to
New York or Singapore. Premium economy may be booked for legs between 4 and 6 hours when the
fare difference is below EUR 200.
""",
    """\
5. Daily allowance (per diem)

While travelling on business you receive a fixed daily allowance for meals, local transport and
incidental costs. You do not need receipts for items covered by the per diem. The amount depends
on the city tier of the place where you stay overnight:

    Tier 1 cities (London, New York, Zurich, Tokyo, San Francisco): EUR 95 per day
    Tier 2 cities (Berlin, Paris, Madrid, Chicago, Dublin, Stockholm): EUR 70 per day
    Tier 3 (all other destinations): EUR 55 per day

On the day of departure and the day of return you receive 75 percent of the daily amount. When a
meal is provided free of charge, for example by a client or a conference, deduct 20 percent of
the daily amount for breakfast and 30 percent each for lunch and dinner.

6. Hotel limits

Meridian books a standard single room. The maximum nightly rate including taxes is EUR 240 in
Tier 1 cities, EUR 170 in Tier 2 cities and EUR 120 in Tier 3. If a conference hotel is more
expensive, the practice director may approve the difference on form TR-2. Stays longer than 10
nights in one place should use a serviced apartment, which Meridian can arrange. Minibar,
in-room films, laundry on trips shorter than 5 nights and room upgrades are personal costs.

7. Private car and mileage

Using your own car for business trips is allowed when it is cheaper than rail or when you carry
equipment. The mileage allowance is EUR 0.42 per kilometre, which covers fuel, insurance and
wear. Parking and tolls are reimbursed separately against receipts. Commuting between home and
your normal office is never business mileage. Rental cars are booked through Meridian in the
compact category; accept the collision damage waiver offered in the rental contract.
""",
    """\
8. Claiming travel expenses

Submit your travel expense claim within 30 days after the last day of the trip using form TR-7
(Travel Expense Claim) in the Ledgerly expense tool. Claims submitted later than 30 days need
the written approval of the Head of Finance Operations, and claims older than 90 days are not
paid. Attach an itemised receipt for every cost that is not covered by the per diem. Your line
manager approves the claim first; Finance Operations then checks it against this policy.

A complete TR-7 claim contains:
    - the approved trip reference (the TR-2 number for trips that needed one),
    - the dates and cities of each overnight stay, so the correct per diem tier is applied,
    - receipts for hotels, transport, parking, tolls and visa fees,
    - the client code if the costs are to be re-invoiced to a client.

9. Travel insurance and safety

All employees on business trips are covered by the company's worldwide travel insurance policy
with Alder Mutual, policy number NWA-TRV-0093. Carry the insurance card from the intranet. Before
any trip to a country rated "high risk" by the Dutch Ministry of Foreign Affairs you must
complete the safety briefing with the People team and register your itinerary with Meridian.

10. Combining business and private travel

You may extend a business trip for private purposes if the extension does not increase the cost
to the company. Any extra nights, changed flights or additional travel are at your own expense,
and the per diem stops on the last business day. Family members may accompany you at their own
cost; they are not covered by the company travel insurance.

11. Sustainability

Northwind Analytics aims to reduce travel emissions by 30 percent against 2019 levels by 2026.
Before planning a trip, consider whether a video call would achieve the same result. Teams
report their travel emissions each quarter using the figures supplied by Meridian.

12. Questions and exceptions

Questions about this policy go to Finance Operations at finance-ops@northwind-analytics.example.
Exceptions must be approved in advance by the Head of Finance Operations. Breaches of this policy
may lead to costs not being reimbursed and, in repeated cases, to disciplinary action.
""",
]

IT_SECURITY_POLICY = [
    """\
NORTHWIND ANALYTICS B.V. - INFORMATION SECURITY POLICY
Document owner: Priya Raman, Chief Information Security Officer (CISO)
Version 5.0, effective 1 March 2024. Review cycle: once a year.

1. Scope

This policy applies to every person with access to Northwind Analytics systems or data: staff,
contractors, interns and partners. It covers company laptops and phones, personal devices used
for work, cloud services and all client data we process. Client contracts may add requirements;
where they are stricter, the client requirements apply.

2. Passwords and passphrases

Passwords must be at least 14 characters long. We recommend a passphrase of four or more
unrelated words. Passwords must be unique to each system and stored only in the company password
manager, Keeper. Do not write passwords down or share them, not even with the IT Service Desk.
Passwords are not changed on a fixed schedule; you must change a password immediately if you
suspect it has been exposed. Accounts are locked for 15 minutes after 10 failed sign-in attempts.

3. Multi-factor authentication (MFA)

MFA is mandatory for email, the VPN, the code repositories, the cloud consoles and every system
that holds client data. Use the Microsoft Authenticator app or the hardware security key (a FIDO2
key) issued to you on your first day. SMS codes are not accepted as a second factor. If you lose
your phone or security key, report it to the IT Service Desk the same day so the factor can be
revoked.

4. Laptops and mobile devices

All company laptops use full-disk encryption: BitLocker on Windows and FileVault on macOS. The
IT team enables encryption before handing the laptop over and verifies it monthly; never disable
it. Screens lock automatically after 5 minutes of inactivity, and you must lock your screen
whenever you leave the device. Phones that receive company email must have a PIN of at least 6
digits and be enrolled in Intune. Never leave a laptop unattended in a car or in public places.
""",
    """\
5. Removable media

USB storage devices (memory sticks, external drives) are blocked on all company laptops. If a
client requires data to be delivered on physical media, request an exception on form SEC-4; the
security team will supply an encrypted drive and log its use. Keyboards, mice, headsets and other
USB peripherals that do not store data are allowed.

6. Software updates and patching

Laptops install operating system and browser updates automatically. Critical security patches
must be installed within 72 hours of release; you will be asked to restart, and after 72 hours
the restart is forced. Servers and cloud workloads are patched in the monthly maintenance window
on the first Sunday of each month between 02:00 and 06:00 CET. Only software from the company
software catalogue may be installed; other software needs approval by the security team.

7. Data classification

All information is classified at one of four levels, and must be handled accordingly:

    Public - approved for release, such as published blog posts and marketing material.
    Internal - everyday company information, such as this policy and the staff directory.
    Confidential - client data, contracts, financial figures and personal data of employees.
    Restricted - special-category personal data, credentials, encryption keys and any data a
    client marks as restricted. Restricted data may only be stored in the secure enclave.

Confidential and Restricted data must never be copied to personal devices or personal cloud
accounts, and must never be pasted into external AI tools or public websites. Email containing
Confidential data sent outside the company must be encrypted.
""",
    """\
8. Reporting security incidents

Report any suspected security incident within 1 hour of noticing it by writing to
security@northwind-analytics.example or calling the security hotline on extension 4999. Examples
are phishing emails you clicked, a lost or stolen laptop or phone, data sent to the wrong person,
unexpected password reset messages, or malware warnings. Do not try to investigate yourself and
do not delete evidence. Reporting quickly is always right; nobody is penalised for a report that
turns out to be harmless.

9. Access reviews and leavers

Managers review the access rights of their team every quarter. When someone leaves, their
accounts are disabled on their last working day at 17:00, and all equipment must be returned
within 5 working days.

10. Compliance

Breaches of this policy may lead to disciplinary action. Questions go to the CISO, Priya Raman.
""",
]


def main() -> None:
    """Write corpus/travel-policy.pdf and corpus/it-security-policy.pdf."""
    for pages in (TRAVEL_POLICY, IT_SECURITY_POLICY):
        for number, text in enumerate(pages, start=1):
            n_lines = len(layout_lines(text))
            if n_lines > MAX_LINES:
                raise SystemExit(f"page {number} has {n_lines} lines, more than {MAX_LINES}")
    CORPUS.mkdir(exist_ok=True)
    make_pdf(
        CORPUS / "travel-policy.pdf",
        TRAVEL_POLICY,
        title="Northwind Analytics - Business Travel Policy",
    )
    make_pdf(
        CORPUS / "it-security-policy.pdf",
        IT_SECURITY_POLICY,
        title="Northwind Analytics - Information Security Policy",
    )
    for name in ("travel-policy.pdf", "it-security-policy.pdf"):
        path = CORPUS / name
        print(f"wrote {path.relative_to(REPO_ROOT)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
