# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Synthetic rosters for demos and benchmarks: realistic, deterministic for a seed, any size.

The people look like a French département's staff (accented names, services such as the payment
chain for social benefits, mobiles in +33 6/7). Every generated roster validates against the
services in SERVICES, which the lab inventory also declares.
"""
from __future__ import annotations

import random
import unicodedata

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person, is_system_account

# service key -> (label, share of staff, priority weights critical/high/normal/low)
SERVICES = {
    "paie-prestations": ("Paiement des prestations sociales", 6, (40, 40, 20, 0)),
    "rsa": ("Revenu de solidarité active", 7, (20, 40, 40, 0)),
    "ase": ("Aide sociale à l'enfance", 8, (30, 40, 30, 0)),
    "pmi": ("Protection maternelle et infantile", 5, (10, 40, 50, 0)),
    "apa": ("Allocation personnalisée d'autonomie", 5, (10, 30, 60, 0)),
    "mdph": ("Maison départementale des personnes handicapées", 5, (10, 30, 60, 0)),
    "insertion": ("Insertion et emploi", 4, (0, 20, 70, 10)),
    "finances": ("Finances et budget", 4, (10, 30, 60, 0)),
    "rh": ("Ressources humaines", 5, (5, 25, 60, 10)),
    "dsi": ("Systèmes d'information", 3, (30, 50, 20, 0)),
    "routes": ("Routes et infrastructures", 8, (5, 15, 60, 20)),
    "colleges": ("Collèges et éducation", 7, (0, 10, 70, 20)),
    "culture": ("Culture et patrimoine", 3, (0, 5, 60, 35)),
    "archives": ("Archives départementales", 2, (0, 5, 55, 40)),
    "environnement": ("Environnement et eau", 3, (0, 10, 70, 20)),
    "juridique": ("Affaires juridiques", 2, (5, 30, 65, 0)),
    "marches": ("Commande publique", 2, (5, 30, 65, 0)),
    "communication": ("Communication", 2, (0, 15, 65, 20)),
    "accueil": ("Accueil et standard", 4, (20, 40, 40, 0)),
    "logistique": ("Moyens généraux et logistique", 5, (0, 10, 60, 30)),
}

FIRST_NAMES = (
    "Camille Léa Manon Chloé Inès Zoé Jade Louise Élodie Hélène Cécile Anaïs Noémie Clémence Maëlle "
    "Béatrice Françoise Mélanie Gaëlle Agnès Thérèse Sophie Nathalie Valérie Aurélie Émilie Océane "
    "Lucas Hugo Théo Louis Gabriel Raphaël Jules Arthur Mathéo Noé Léo Adrien Benoît Jérôme Cédric "
    "François Grégoire Stéphane Frédéric Régis Joël Loïc Gaël Mickaël Sébastien Hervé Rémi Timothée "
    "Yasmine Karim Mehdi Fatoumata Nguyễn Aïcha Samir Oumar Malik Leïla"
).split()
LAST_NAMES = (
    "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent Lefèbvre "
    "Michel Garcia David Bertrand Roux Vincent Fournier Morel Girard André Lefèvre Mercier Dupont "
    "Lambert Bonnet François Martinez Legrand Garnier Faure Rousseau Blanc Guérin Müller Henry "
    "Roussel Nicolas Perrin Morin Mathieu Clément Gauthier Dumont Lopez Fontaine Chevalier Robin "
    "Masson Sanchez Gérard Nguyen Boyer Denis Lemaire Duval Joly Gautier Roger Roche Roy Noël "
    "Meyer Lucas Meunier Jean Pérez Marchand Dufour Blanchard Marie Barbier Brun Dumas Brunet "
    "Schmitt Leroux Colin Fernandez Pierre Renard Arnaud Rolland Caron Aubert Giraud Leclerc "
    "Vidal Bourgeois Renaud Lemoine Picard Gaillard Philippe Leclercq Lacroix Fabre Dupuis Olivier "
    "Rodriguez Da Silva Hubert Louis Charles Guillot Rivière Le Gall Guillaume Adam Rey Moulin "
    "Gonzalez Berger Lecomte Ménard Fleury Deschamps Carpentier Julien Benoît Paris Maillard "
    "Marchal Aubry Vasseur Le Roux Renault Jacquet Collet Prévost Poirier Charpentier Royer "
    "Huet Baron Dupuy Pons Paul Laine Carré Breton Rémy Schneider Pérrin Besson Cordier Lefort"
).split()
SITES = ("Hôtel du Département", "Centre médico-social Nord", "Centre médico-social Sud",
         "Maison des solidarités Est", "Agence routière Ouest", "Archives - site de Lagord")

_DEVICE_WEIGHTS = (("laptop", 35), ("thin_client", 55), ("own_device", 10))
_MODE_WEIGHTS = (("none", 25), ("always", 35), ("busy", 15), ("no_answer", 25))


def _slug(text):
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in ascii_text.lower() if c.isalnum())


def _valid_mobile(number):
    import phonenumbers

    return phonenumbers.is_valid_number(phonenumbers.parse(number))


def _pick(rng, weighted):
    items, weights = zip(*weighted)
    return rng.choices(items, weights=weights)[0]


def generate_people(count=5000, seed=1, services=None):
    """``count`` valid, distinct people; the same seed always gives the same roster."""
    rng = random.Random(seed)  # noqa: S311 - synthetic people, reproducible from the seed: no secret
    catalog = {k: v for k, v in SERVICES.items() if services is None or k in services}
    if not catalog:
        raise ValueError("no service to place people in")
    keys = list(catalog)
    shares = [catalog[k][1] for k in keys]
    used_ids = set()
    used_mobiles = set()
    people = []
    for index in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        base = f"{_slug(first)[:1]}{_slug(last)}"[:24] or "agent"
        pid = base
        n = 1
        while pid in used_ids or is_system_account(pid):  # never the name of a system account
            n += 1
            pid = f"{base}{n}"
        used_ids.add(pid)
        service = rng.choices(keys, weights=shares)[0]
        priority = rng.choices(("critical", "high", "normal", "low"), weights=catalog[service][2])[0]
        device = _pick(rng, _DEVICE_WEIGHTS)
        needs = {"vpn"} if device in ("laptop", "own_device") else {"desktop"}
        if device == "laptop" and rng.random() < 0.15:
            needs.add("desktop")
        if rng.random() < 0.75:
            needs.add("phone")
        while True:  # a French mobile the numbering plan really allocates, not used yet
            prefix = rng.choice(("6", "7"))
            second = rng.randint(10, 99) if prefix == "6" else rng.randint(50, 89)
            mobile = f"+33{prefix}{second}{rng.randint(0, 999999):06d}"
            if mobile not in used_mobiles and _valid_mobile(mobile):
                used_mobiles.add(mobile)
                break
        mode = _pick(rng, _MODE_WEIGHTS) if "phone" in needs else "none"
        people.append(Person(
            id=pid,
            full_name=f"{first} {last}",
            email=f"{pid}@departement.example",
            service=service,
            priority=priority,
            site=rng.choice(SITES),
            device=device,
            needs=frozenset(needs),
            extension=str(20000 + index) if "phone" in needs else "",
            forward_to=mobile if mode != "none" else "",
            forward_mode=mode,
            forward_delay=rng.choice((15, 20, 25)),
            voicemail=rng.random() < 0.6,
            active=rng.random() > 0.01,
            language="fr" if rng.random() < 0.92 else "en",
            line=index + 2,
        ))
    return people


def merge_people(people, keep):
    """``people`` without those whose id, email or extension collide with ``keep``, then ``keep``.

    For a synthetic roster run against an inventory that names real people (queue agents, say)."""
    taken = {attr: {getattr(p, attr) for p in keep if getattr(p, attr)} for attr in ("id", "email", "extension")}
    free = [p for p in people if not any(getattr(p, attr) in taken[attr] for attr in taken)]
    return free + list(keep)
