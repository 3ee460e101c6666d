{
 "patcher": {
  "fileversion": 1,
  "appversion": {
   "major": 8,
   "minor": 5,
   "revision": 0,
   "architecture": "x64",
   "modernui": 1
  },
  "classnamespace": "box",
  "rect": [
   80.0,
   80.0,
   900.0,
   600.0
  ],
  "boxes": [
   {
    "box": {
     "id": "obj-1",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20,
      10,
      600,
      20
     ],
     "outlettype": [],
     "text": "flowshot: click the button to play a new one-shot from flowshot.ts (in Max's search path)"
    }
   },
   {
    "box": {
     "id": "obj-2",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20,
      32,
      600,
      20
     ],
     "outlettype": [],
     "text": "velocity scales the hit: a one-sample click of that height is a rising edge for nn~"
    }
   },
   {
    "box": {
     "id": "obj-3",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      20,
      70,
      50,
      22
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0
    }
   },
   {
    "box": {
     "id": "obj-4",
     "maxclass": "button",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      90,
      70,
      24,
      24
     ],
     "outlettype": [
      "bang"
     ],
     "parameter_enable": 0
    }
   },
   {
    "box": {
     "id": "obj-5",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      90,
      110,
      50,
      22
     ],
     "outlettype": [
      "signal"
     ],
     "text": "click~"
    }
   },
   {
    "box": {
     "id": "obj-6",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      90,
      140,
      50,
      22
     ],
     "outlettype": [
      "signal"
     ],
     "text": "*~ 1."
    }
   },
   {
    "box": {
     "id": "obj-7",
     "maxclass": "newobj",
     "numinlets": 9,
     "numoutlets": 1,
     "patching_rect": [
      20,
      460,
      400,
      22
     ],
     "outlettype": [
      "signal"
     ],
     "text": "nn~ flowshot sample 2048"
    }
   },
   {
    "box": {
     "id": "obj-8",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      200,
      60,
      400,
      20
     ],
     "outlettype": [],
     "text": "macro knobs: -3..3 = std along the sound's main directions"
    }
   },
   {
    "box": {
     "id": "obj-9",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      200,
      85,
      140,
      20
     ],
     "outlettype": [
      ""
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": -3.0,
     "size": 6.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-10",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      360,
      85,
      40,
      22
     ],
     "outlettype": [
      "signal"
     ],
     "text": "sig~"
    }
   },
   {
    "box": {
     "id": "obj-11",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      410,
      85,
      80,
      20
     ],
     "outlettype": [],
     "text": "knob 1"
    }
   },
   {
    "box": {
     "id": "obj-12",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      200,
      115,
      140,
      20
     ],
     "outlettype": [
      ""
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": -3.0,
     "size": 6.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-13",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      360,
      115,
      40,
      22
     ],
     "outlettype": [
      "signal"
     ],
     "text": "sig~"
    }
   },
   {
    "box": {
     "id": "obj-14",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      410,
      115,
      80,
      20
     ],
     "outlettype": [],
     "text": "knob 2"
    }
   },
   {
    "box": {
     "id": "obj-15",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      200,
      145,
      140,
      20
     ],
     "outlettype": [
      ""
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": -3.0,
     "size": 6.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-16",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      360,
      145,
      40,
      22
     ],
     "outlettype": [
      "signal"
     ],
     "text": "sig~"
    }
   },
   {
    "box": {
     "id": "obj-17",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      410,
      145,
      80,
      20
     ],
     "outlettype": [],
     "text": "knob 3"
    }
   },
   {
    "box": {
     "id": "obj-18",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      200,
      175,
      140,
      20
     ],
     "outlettype": [
      ""
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": -3.0,
     "size": 6.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-19",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      360,
      175,
      40,
      22
     ],
     "outlettype": [
      "signal"
     ],
     "text": "sig~"
    }
   },
   {
    "box": {
     "id": "obj-20",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      410,
      175,
      80,
      20
     ],
     "outlettype": [],
     "text": "knob 4"
    }
   },
   {
    "box": {
     "id": "obj-21",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      200,
      205,
      140,
      20
     ],
     "outlettype": [
      ""
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": -3.0,
     "size": 6.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-22",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      360,
      205,
      40,
      22
     ],
     "outlettype": [
      "signal"
     ],
     "text": "sig~"
    }
   },
   {
    "box": {
     "id": "obj-23",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      410,
      205,
      80,
      20
     ],
     "outlettype": [],
     "text": "knob 5"
    }
   },
   {
    "box": {
     "id": "obj-24",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      200,
      235,
      140,
      20
     ],
     "outlettype": [
      ""
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": -3.0,
     "size": 6.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-25",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      360,
      235,
      40,
      22
     ],
     "outlettype": [
      "signal"
     ],
     "text": "sig~"
    }
   },
   {
    "box": {
     "id": "obj-26",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      410,
      235,
      80,
      20
     ],
     "outlettype": [],
     "text": "knob 6"
    }
   },
   {
    "box": {
     "id": "obj-27",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      200,
      265,
      140,
      20
     ],
     "outlettype": [
      ""
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": -3.0,
     "size": 6.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-28",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      360,
      265,
      40,
      22
     ],
     "outlettype": [
      "signal"
     ],
     "text": "sig~"
    }
   },
   {
    "box": {
     "id": "obj-29",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      410,
      265,
      80,
      20
     ],
     "outlettype": [],
     "text": "knob 7"
    }
   },
   {
    "box": {
     "id": "obj-30",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      200,
      295,
      140,
      20
     ],
     "outlettype": [
      ""
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": -3.0,
     "size": 6.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-31",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      360,
      295,
      40,
      22
     ],
     "outlettype": [
      "signal"
     ],
     "text": "sig~"
    }
   },
   {
    "box": {
     "id": "obj-32",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      410,
      295,
      80,
      20
     ],
     "outlettype": [],
     "text": "knob 8"
    }
   },
   {
    "box": {
     "id": "obj-33",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      560,
      60,
      300,
      20
     ],
     "outlettype": [],
     "text": "temperature: 0 = a training sound itself, 1 = around it"
    }
   },
   {
    "box": {
     "id": "obj-34",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      560,
      85,
      50,
      22
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0
    }
   },
   {
    "box": {
     "id": "obj-35",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      560,
      115,
      130,
      22
     ],
     "outlettype": [
      ""
     ],
     "text": "set temperature $1"
    }
   },
   {
    "box": {
     "id": "obj-36",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      560,
      150,
      300,
      20
     ],
     "outlettype": [],
     "text": "seed: -1 = a new sound per hit, n >= 0 = always the same"
    }
   },
   {
    "box": {
     "id": "obj-37",
     "maxclass": "number",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      560,
      175,
      50,
      22
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0
    }
   },
   {
    "box": {
     "id": "obj-38",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      560,
      205,
      100,
      22
     ],
     "outlettype": [
      ""
     ],
     "text": "set seed $1"
    }
   },
   {
    "box": {
     "id": "obj-39",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      560,
      260,
      60,
      22
     ],
     "outlettype": [
      "bang"
     ],
     "text": "loadbang"
    }
   },
   {
    "box": {
     "id": "obj-40",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      560,
      290,
      90,
      22
     ],
     "outlettype": [
      ""
     ],
     "text": "bufsize 2048"
    }
   },
   {
    "box": {
     "id": "obj-41",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      560,
      320,
      300,
      20
     ],
     "outlettype": [],
     "text": "latency: about 2 x 2048 samples; the model runs at its own rate"
    }
   },
   {
    "box": {
     "id": "obj-42",
     "maxclass": "ezdac~",
     "numinlets": 2,
     "numoutlets": 0,
     "patching_rect": [
      20,
      500,
      45,
      45
     ],
     "outlettype": []
    }
   }
  ],
  "lines": [
   {
    "patchline": {
     "source": [
      "obj-4",
      0
     ],
     "destination": [
      "obj-5",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-5",
      0
     ],
     "destination": [
      "obj-6",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-3",
      0
     ],
     "destination": [
      "obj-6",
      1
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-6",
      0
     ],
     "destination": [
      "obj-7",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-9",
      0
     ],
     "destination": [
      "obj-10",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-10",
      0
     ],
     "destination": [
      "obj-7",
      1
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-12",
      0
     ],
     "destination": [
      "obj-13",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-13",
      0
     ],
     "destination": [
      "obj-7",
      2
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-15",
      0
     ],
     "destination": [
      "obj-16",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-16",
      0
     ],
     "destination": [
      "obj-7",
      3
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-18",
      0
     ],
     "destination": [
      "obj-19",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-19",
      0
     ],
     "destination": [
      "obj-7",
      4
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-21",
      0
     ],
     "destination": [
      "obj-22",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-22",
      0
     ],
     "destination": [
      "obj-7",
      5
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-24",
      0
     ],
     "destination": [
      "obj-25",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-25",
      0
     ],
     "destination": [
      "obj-7",
      6
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-27",
      0
     ],
     "destination": [
      "obj-28",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-28",
      0
     ],
     "destination": [
      "obj-7",
      7
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-30",
      0
     ],
     "destination": [
      "obj-31",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-31",
      0
     ],
     "destination": [
      "obj-7",
      8
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-34",
      0
     ],
     "destination": [
      "obj-35",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-37",
      0
     ],
     "destination": [
      "obj-38",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-39",
      0
     ],
     "destination": [
      "obj-40",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-35",
      0
     ],
     "destination": [
      "obj-7",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-38",
      0
     ],
     "destination": [
      "obj-7",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-40",
      0
     ],
     "destination": [
      "obj-7",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-7",
      0
     ],
     "destination": [
      "obj-42",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-7",
      0
     ],
     "destination": [
      "obj-42",
      1
     ]
    }
   }
  ]
 }
}
