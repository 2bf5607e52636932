"""Published Food-Kitchen numbers of the LGCD paper, for the side-by-side comparison in the report.

Source: ../shared/paper/LGCD.txt, Table 1 ("Overall performance comparison",
section 4.2; Food-Kitchen columns) and Table 3 ("Ablation studies", section 4.3.1;
Food-Kitchen columns), copied by hand. Food is domain A (Grocery_and_Gourmet_Food)
and Kitchen domain B (Home_and_Kitchen). The paper ranks each test target against
999 negatives "from all participating domains" (section 4.1.1) on the LLMCDSR release.
"""

TABLE1_COLUMNS = (("A", "hr@5"), ("A", "hr@10"), ("A", "ndcg@5"), ("A", "ndcg@10"),
                  ("B", "hr@5"), ("B", "hr@10"), ("B", "ndcg@5"), ("B", "ndcg@10"))
TABLE1_FOOD_KITCHEN: dict[str, tuple[float, ...]] = {
    "GRU4Rec": (0.0367, 0.0867, 0.0236, 0.0398, 0.0691, 0.1146, 0.0438, 0.0582),
    "DiffuRec": (0.0600, 0.1267, 0.0313, 0.0520, 0.0392, 0.0612, 0.0226, 0.0300),
    "SASRec": (0.1900, 0.2900, 0.1187, 0.1509, 0.2276, 0.3250, 0.1522, 0.1836),
    "FEARec": (0.1733, 0.2733, 0.1044, 0.1363, 0.2402, 0.3454, 0.1530, 0.1866),
    "UniSRec": (0.0733, 0.1235, 0.0444, 0.0596, 0.0675, 0.1020, 0.0451, 0.0562),
    "Tri-CDR": (0.1733, 0.2967, 0.1094, 0.1483, 0.1538, 0.2449, 0.1077, 0.1296),
    "MGCL": (0.2467, 0.3367, 0.1673, 0.1964, 0.2590, 0.3140, 0.1910, 0.2085),
    "CTT": (0.1567, 0.2400, 0.0969, 0.1237, 0.1567, 0.2400, 0.0969, 0.1237),
    "DA-DAN": (0.1633, 0.2733, 0.1124, 0.1475, 0.2480, 0.3705, 0.1648, 0.2037),
    "LLMCDSR": (0.2200, 0.3600, 0.1443, 0.1889, 0.2214, 0.3155, 0.1541, 0.1847),
    "PLCR": (0.2600, 0.3967, 0.1647, 0.2085, 0.2308, 0.3375, 0.1540, 0.1883),
    "SSCDR": (0.1943, 0.2747, 0.1264, 0.1455, 0.1941, 0.2827, 0.1465, 0.1709),
    "UniCDR": (0.2328, 0.3109, 0.1505, 0.1785, 0.2228, 0.3222, 0.1689, 0.1903),
    "UCLR": (0.2288, 0.3310, 0.1567, 0.1916, 0.2213, 0.3323, 0.1677, 0.1920),
    "CD-CDR": (0.2467, 0.3233, 0.1565, 0.1816, 0.2559, 0.3250, 0.1817, 0.1977),
    "LGCD": (0.2800, 0.4000, 0.1805, 0.2190, 0.3093, 0.3893, 0.2140, 0.2397),
}

TABLE3_COLUMNS = (("A", "hr@5"), ("A", "ndcg@5"), ("B", "hr@5"), ("B", "ndcg@5"))
TABLE3_FOOD_KITCHEN: dict[str, tuple[float, ...]] = {
    "w/o Diffusion": (0.2200, 0.1368, 0.2747, 0.1911),
    "w/o Overlap Diffusion": (0.0900, 0.0584, 0.0549, 0.0353),
    "w/o Pseudo Diffusion": (0.2667, 0.1778, 0.2543, 0.1741),
    "w/o Alignment Loss": (0.2233, 0.1430, 0.2449, 0.1583),
    "w/o Guesser Network": (0.2667, 0.1798, 0.2841, 0.1925),
    "w/o MoE Fusion": (0.2665, 0.1757, 0.2575, 0.1730),
    "w/o Overlap Cyclic": (0.2100, 0.1305, 0.2637, 0.1833),
    "LGCD": (0.2800, 0.1805, 0.3093, 0.2140),
}

# Our model names -> the paper's row names (models the paper has no row for are absent).
PAPER_NAMES = {"gru4rec": "GRU4Rec", "sasrec": "SASRec", "lgcd": "LGCD",
               "lgcd_wo_diffusion": "w/o Diffusion",
               "lgcd_wo_overlap_diffusion": "w/o Overlap Diffusion",
               "lgcd_wo_pseudo_diffusion": "w/o Pseudo Diffusion",
               "lgcd_wo_alignment": "w/o Alignment Loss", "lgcd_wo_guesser": "w/o Guesser Network",
               "lgcd_wo_moe": "w/o MoE Fusion", "lgcd_wo_overlap_cyclic": "w/o Overlap Cyclic"}
