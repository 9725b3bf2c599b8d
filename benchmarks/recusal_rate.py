"""Over-recusal: how many neutral reports (naming no committee member) recuse someone.

Run by hand: `.venv/bin/python benchmarks/recusal_rate.py`. Each report is a whole
message (headers and body, Welsh or English, about meetings, services, translation,
events) passed through `scan_report` against a Welsh committee. None of them names a
member, so every match printed is a false alarm: definite ones are bugs, possible ones
are the price of failing closed.
"""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.policy import SMTP

from mailhub.conduct.config import CommitteeMember
from mailhub.conduct.conflicts import scan_report

COMMITTEE = (
    CommitteeMember("gareth-davies", "Gareth Davies", ("gareth@example.cymru",), ("Gaz",)),
    CommitteeMember("megan-pritchard", "Megan Pritchard", ("megan@example.cymru",)),
    CommitteeMember("rhys-llywelyn", "Rhys Llywelyn", ("rhys@example.cymru",)),
    CommitteeMember("sian-thomas", "Siân Thomas", ("sian@example.cymru",)),
    CommitteeMember("bryn-hughes", "Bryn Hughes", ("bryn@example.net",), ("Brynnie",)),
    CommitteeMember("ada-jones", "Ada Jones", ("ada@example.net",), ("AJ",)),
    CommitteeMember("carys-pryce", "Carys Pryce", ("carys@uni.example",)),
    CommitteeMember("dafydd-ap-iwan", "Dafydd ap Iwan", ("dafydd@example.cymru",)),
)

REPORTS: list[tuple[str, str, str]] = [
    (
        "Cyfarfod y pwyllgor",
        "eleri.morgan@example.org",
        "Annwyl bawb,\n\nYn y cyfarfod ddydd Mawrth fe siaradodd Huw Roberts dros y grŵp am "
        "hanner awr heb adael i neb arall gael gair. Pan ofynnodd Ffion am gyfle i ymateb, "
        "dywedodd wrthi am fod yn dawel. Roedd sawl un yn anghyfforddus.\n\nDiolch,\nEleri",
    ),
    (
        "Gwasanaeth cyfieithu ar y pryd",
        "owain@example.org",
        "Helo,\n\nNid oedd y gwasanaeth cyfieithu ar y pryd ar gael yn y gynhadledd yng "
        "Nghaerdydd, er i ni ofyn amdano fis ymlaen llaw. Cafodd siaradwyr Cymraeg eu "
        "hanwybyddu yn y sesiwn holi ac ateb. Hoffwn i chi edrych ar hyn.\n\nOwain Evans",
    ),
    (
        "Digwyddiad yn y llyfrgell",
        "nia@example.org",
        "Bore da,\n\nAr ôl y noson lyfrau ym Mangor, gwnaeth un o'r gwirfoddolwyr sylwadau "
        "am acen un o'r plant. Roedd ei mam yn ofidus iawn. Rwy'n credu y dylai'r trefnwyr "
        "gael hyfforddiant.\n\nCofion,\nNia Williams",
    ),
    (
        "Complaint about the translation workshop",
        "john.smith@example.com",
        "Hello,\n\nAt the translation workshop last Thursday one of the attendees, Tom "
        "Baker, repeatedly mocked people who asked questions in Welsh. The facilitator "
        "did not step in. I would like this looked into.\n\nRegards,\nJohn Smith",
    ),
    (
        "Behaviour on the forum",
        "priya@example.com",
        "Hi,\n\nA user called Mark Ellis has been posting sarcastic replies to every "
        "beginner on the learners' forum for two weeks. Screenshots are below as text.\n\n"
        "> Mark: nobody needs to learn a dying language\n> Mark: try harder\n\nPriya Patel",
    ),
    (
        "Ystafell ddim yn hygyrch",
        "gwen.parry@example.org",
        "Prynhawn da,\n\nRoedd yr ystafell ar gyfer y gweithdy ar y llawr cyntaf, heb lifft. "
        "Roedd yn rhaid i ddau aelod adael. Dywedodd y rheolwr nad oedd dim y gallai ei "
        "wneud. Dylen ni drefnu lleoliad arall y tro nesaf.\n\nGwen",
    ),
    (
        "Meeting minutes and a concern",
        "lisa.brown@example.com",
        "Dear committee,\n\nDuring Monday's planning meeting for the summer festival, "
        "Steve Collins shouted at a volunteer about the budget. I have attached the "
        "minutes as text below.\n\nMinutes: budget agreed, venue booked, next meeting in "
        "June.\n\nBest wishes,\nLisa",
    ),
    (
        "Sylwadau amhriodol",
        "llinos@example.org",
        "Shwmae,\n\nMewn sgwrs ar ôl y gig yn Aberystwyth, gwnaeth aelod o'r band, Iestyn "
        "Morris, sylwadau rhywiaethol am y gantores. Roedd pobl eraill yn chwerthin. Dyw "
        "hyn ddim yn dderbyniol yn ein cymuned ni.\n\nLlinos",
    ),
    (
        "Accessibility at the conference",
        "sam.taylor@example.com",
        "Hello,\n\nThe live captions at the conference stopped working after lunch and "
        "the organisers refused to pause the talks. Deaf attendees missed half the "
        "programme. The price of tickets was high enough to expect better.\n\nSam Taylor",
    ),
    (
        "Gwirfoddolwr yn cael ei fwlio",
        "ceri@example.org",
        "Helo,\n\nMae fy ffrind, sy'n gwirfoddoli yn y siop, yn cael ei bwlio gan y "
        "goruchwyliwr shifft, Alun Jenkins. Mae'n gweiddi arni o flaen cwsmeriaid. Mae hi'n "
        "ofni colli ei lle.\n\nDiolch am eich help,\nCeri",
    ),
    (
        "Issue at the St David's Day event",
        "olivia@example.com",
        "Hi there,\n\nAt the St David's Day parade in Cardiff, a steward told a group of "
        "learners to 'speak English or go home'. Our local MP was there and saw it. I "
        "have the steward's badge number: 4471.\n\nOlivia Green",
    ),
    (
        "Cwyn am y grŵp darllen",
        "aled@example.org",
        "Annwyl bwyllgor,\n\nYn y grŵp darllen nos Iau, fe wnaeth Elin Rowlands chwerthin "
        "am ben aelod newydd oedd yn dysgu Cymraeg, a'i galw'n 'dwp'. Gadawodd yr aelod "
        "newydd yn ei dagrau. Hoffwn i hyn gael ei drafod.\n\nAled ap Gwyn",
    ),
    (
        "Email tone",
        "kevin@example.com",
        "Good afternoon,\n\nI received several aggressive emails from the events "
        "coordinator, Paul Wright, after I declined to work an extra shift. I can forward "
        "them if needed. I would prefer that he is not told I complained.\n\nKevin",
    ),
    (
        "Noson gymdeithasol",
        "manon@example.org",
        "Noswaith dda,\n\nYn y noson gymdeithasol yn y clwb rygbi, roedd dyn nad oedd yn "
        "aelod yn aflonyddu ar rai o'r merched ifanc. Gofynnodd y staff iddo adael ond "
        "daeth yn ôl. Dylai fod polisi clir am westeion.\n\nManon Huws",
    ),
    (
        "Online class recording",
        "daniel@example.com",
        "Hello,\n\nThe recording of the online Welsh class was shared publicly without "
        "asking the learners. One of them, Sarah O'Neill, is upset that her face and "
        "voice are on a public page. Please have it taken down.\n\nDaniel",
    ),
    (
        "Swyddog yn anghwrtais",
        "dewi@example.org",
        "Bore da,\n\nPan ffoniais y swyddfa i holi am y cwrs, roedd y swyddog yn anghwrtais "
        "iawn ac yn gwrthod siarad Cymraeg â mi. Ar y bryn ger y ganolfan mae arwydd "
        "uniaith Saesneg hefyd.\n\nDewi Lloyd",
    ),
    (
        "Harassment at the choir",
        "hannah@example.com",
        "Dear all,\n\nAt choir practice, a tenor named Richard Hall keeps standing too "
        "close to the younger sopranos and commenting on their clothes. Several have "
        "stopped coming. The choir director has been told twice.\n\nHannah Scott",
    ),
    (
        "Gŵyl y Gwanwyn",
        "sioned@example.org",
        "Helo bawb,\n\nYng Ngŵyl y Gwanwyn, cafodd stondin y mudiad iaith ei symud heb "
        "rybudd gan y trefnydd, Geraint Price, i gornel dywyll. Collon ni'r rhan fwyaf o'r "
        "ymwelwyr. Roedd hyn yn annheg.\n\nSioned Edwards",
    ),
    (
        "Translation deadline pressure",
        "emma@example.com",
        "Hi,\n\nThe agency coordinator, Chris Martin, insisted that translators work over "
        "the weekend unpaid to meet the council deadline, and threatened to drop anyone "
        "who refused. This is not how freelancers should be treated.\n\nEmma",
    ),
    (
        "Trafferth yn y Steddfod",
        "tomos.wyn@example.org",
        "Shwmae,\n\nYn yr Eisteddfod ym Mhontypridd, gwrthododd un o'r stiwardiaid, Bethan "
        "Lewis, adael i fy mab ag anabledd ddefnyddio'r fynedfa hygyrch. Roedd hi'n "
        "ddiamynedd ac yn swta. Ymddiheurodd y rheolwr wedyn.\n\nTomos Wyn",
    ),
]


def message(subject: str, sender: str, body: str) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = "conduct@cop.example.org"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 04 Mar 2025 10:00:00 +0000"
    msg["Message-ID"] = f"<{abs(hash(subject)) % 10**9}@example.org>"
    msg.set_content(body)
    return msg.as_bytes()


def main() -> None:
    definite = possible = 0
    started = time.perf_counter()
    for subject, sender, body in REPORTS:
        outcome = scan_report(message(subject, sender, body), COMMITTEE)
        if not outcome.matches:
            print(f"  ok          {subject}")
            continue
        kind = "possible" if all(m.possible for m in outcome.matches) else "DEFINITE"
        definite += kind == "DEFINITE"
        possible += kind == "possible"
        for m in outcome.matches:
            print(f"  {kind:10s}  {subject}: {m.member} — {m.reason}")
    elapsed = time.perf_counter() - started
    n = len(REPORTS)
    print(
        f"\n{definite + possible} of {n} neutral reports recuse someone "
        f"({definite} definite, {possible} possible only); {elapsed * 1000:.0f} ms in all"
    )


if __name__ == "__main__":
    main()
