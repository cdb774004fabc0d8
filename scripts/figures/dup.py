import sys,os,collections
root=sys.argv[1]; dirs=sys.argv[2:]; W=6
win=collections.defaultdict(list)
for d in dirs:
  for dp,dn,fn in os.walk(os.path.join(root,d)):
    for f in fn:
        if not f.endswith('.rs'): continue
        p=os.path.join(dp,f); rel=os.path.relpath(p,root)
        lines=[(i+1,l.strip()) for i,l in enumerate(open(p)) ]
        lines=[(i,l) for i,l in lines if l and not l.startswith('//') and len(l)>3]  # drop blank, comments, lone braces
        for k in range(len(lines)-W+1):
            key='\n'.join(l for _,l in lines[k:k+W])
            win[key].append((rel,lines[k][0]))
rep={k:v for k,v in win.items() if len(v)>1}
# merge overlapping windows into blocks: mark lines covered
places=set()
for k,v in rep.items():
    for rel,ln in v: places.add((rel,ln))
# group consecutive starts in same file as one place
byfile=collections.defaultdict(list)
for rel,ln in places: byfile[rel].append(ln)
blocks=0
for rel,l in byfile.items():
    l.sort(); prev=None
    for x in l:
        if prev is None or x-prev>W: blocks+=1
        prev=x
print(f'{len(rep)} distinct 6-line windows repeated; {blocks} places (runs) in {len(byfile)} files')
if '-v' in sys.argv: print({r:len(l) for r,l in byfile.items()})
